import numpy as np
import pytest
import torch

from clip_hand3d.modeling.hand_joints import JOINT_NAMES
from clip_hand3d.prompts import AXIS_PREFIXES, build_prompts, build_prompts_batch

PAPER_IDS = [5, 4, 18, 11, 16]
PAPER_TEXTS = (
    "From left to right, the joints are index MCP, thumb fingertip, little PIP, middle DIP, and ring fingertip.",
    "From top to bottom, the joints are little PIP, thumb fingertip, ring fingertip, index MCP, and middle DIP.",
    "From near to far, the joints are thumb fingertip, ring fingertip, middle DIP, index MCP, and little PIP.",
)


def paper_joints() -> np.ndarray:
    """Joints whose x, y, z orders of PAPER_IDS are those of the paper's figure 2; the others sit at 0."""
    joints = np.zeros((21, 3))
    for axis, order in enumerate(([5, 4, 18, 11, 16], [18, 4, 16, 5, 11], [4, 16, 11, 5, 18])):
        for rank, joint in enumerate(order):
            joints[joint, axis] = 0.01 * (rank + 1)
    return joints


def named_joints(text: str, prefix: str) -> list[str]:
    """The joint names of a prompt, in order."""
    body = text.removeprefix(prefix + " the joints are ").removeprefix(prefix + " the joint is ").removesuffix(".")
    if ", " not in body:
        return body.split(" and ")
    names = body.split(", ")
    return names[:-1] + [names[-1].removeprefix("and ")]


def test_paper_example():
    assert build_prompts(paper_joints(), joint_ids=PAPER_IDS) == PAPER_TEXTS


def test_order_of_joint_ids_does_not_matter():
    assert build_prompts(paper_joints(), joint_ids=[16, 11, 18, 4, 5]) == PAPER_TEXTS
    assert build_prompts(paper_joints(), joint_ids=np.array([4, 18, 5, 16, 11])) == PAPER_TEXTS


def test_torch_and_float32_inputs():
    joints = torch.tensor(paper_joints(), dtype=torch.float32, requires_grad=True)
    assert build_prompts(joints, joint_ids=PAPER_IDS) == PAPER_TEXTS


def test_ties_are_broken_by_joint_index():
    texts = build_prompts(np.zeros((21, 3)), joint_ids=[7, 2, 0])
    for prefix, text in zip(AXIS_PREFIXES, texts, strict=True):
        assert text == f"{prefix} the joints are wrist, thumb PIP, and index DIP."


def test_two_joints_and_one_joint():
    joints = np.zeros((21, 3))
    joints[3] = (-1.0, 1.0, 0.0)
    assert build_prompts(joints, joint_ids=[0, 3]) == (
        "From left to right, the joints are thumb DIP and wrist.",
        "From top to bottom, the joints are wrist and thumb DIP.",
        "From near to far, the joints are wrist and thumb DIP.",
    )
    assert build_prompts(joints, joint_ids=[20])[1] == "From top to bottom, the joint is little fingertip."


def test_random_draw_names_distinct_joints_in_ascending_order():
    joints = np.random.default_rng(1).normal(size=(21, 3))
    index_of = {name: index for index, name in enumerate(JOINT_NAMES)}
    texts = build_prompts(joints, num_joints=7, generator=np.random.default_rng(2))
    chosen = None
    for axis, (prefix, text) in enumerate(zip(AXIS_PREFIXES, texts, strict=True)):
        ids = [index_of[name] for name in named_joints(text, prefix)]
        assert len(ids) == 7 and len(set(ids)) == 7
        assert np.all(np.diff(joints[ids, axis]) > 0)
        chosen = set(ids) if chosen is None else chosen
        assert set(ids) == chosen
    assert build_prompts(joints, num_joints=7, generator=np.random.default_rng(2)) == texts


def test_all_joints_by_default():
    joints = np.random.default_rng(3).normal(size=(21, 3))
    text_x = build_prompts(joints)[0]
    names = named_joints(text_x, AXIS_PREFIXES[0])
    assert sorted(names) == sorted(JOINT_NAMES)
    assert [JOINT_NAMES.index(name) for name in names] == np.argsort(joints[:, 0]).tolist()
    assert text_x.count(",") == 1 + 20  # the prefix's comma and an Oxford-comma list of 21


def test_batch_draws_per_sample_and_sorts_each_sample_by_its_own_joints():
    joints = np.random.default_rng(4).normal(size=(3, 21, 3))
    texts_x, texts_y, texts_z = build_prompts_batch(joints, num_joints=21, generator=np.random.default_rng(0))
    assert len(texts_x) == len(texts_y) == len(texts_z) == 3
    for sample in range(3):
        for axis, texts in enumerate((texts_x, texts_y, texts_z)):
            names = named_joints(texts[sample], AXIS_PREFIXES[axis])
            assert [JOINT_NAMES.index(name) for name in names] == np.argsort(joints[sample, :, axis]).tolist()
    texts = build_prompts_batch(torch.tensor(joints), num_joints=4, generator=np.random.default_rng(5))
    assert texts == build_prompts_batch(joints, num_joints=4, generator=np.random.default_rng(5))
    assert len({text.count(",") for text in texts[0]}) == 1 and texts[0][0].count(",") == 1 + 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"joints_xyz": np.zeros((20, 3))}, ValueError, r"shape \(21, 3\), got \(20, 3\)"),
        ({"joints_xyz": np.full((21, 3), np.nan)}, ValueError, "NaN"),
        ({"joints_xyz": [[0.0] * 3] * 21}, TypeError, "numpy array or a torch tensor"),
        ({"num_joints": 0}, ValueError, r"num_joints must be in 1\.\.21, got 0"),
        ({"num_joints": 22}, ValueError, r"num_joints must be in 1\.\.21, got 22"),
        ({"num_joints": 2.0}, TypeError, "num_joints must be an int"),
        ({"joint_ids": [0, 21]}, ValueError, r"joint_ids must be in 0\.\.20"),
        ({"joint_ids": [3, 3]}, ValueError, "distinct"),
        ({"joint_ids": []}, ValueError, "non-empty"),
        ({"joint_ids": [0.5, 1.0]}, TypeError, "integers"),
    ],
)
def test_build_prompts_errors(kwargs, error, message):
    kwargs = {"joints_xyz": np.zeros((21, 3)), **kwargs}
    with pytest.raises(error, match=message):
        build_prompts(**kwargs)


def test_build_prompts_batch_errors():
    joints = np.zeros((3, 21, 3))
    joints[2, 4, 1] = np.inf
    with pytest.raises(ValueError, match="sample 2"):
        build_prompts_batch(joints)
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        build_prompts_batch(np.zeros((21, 3)))
    with pytest.raises(ValueError, match=r"B >= 1"):
        build_prompts_batch(np.zeros((0, 21, 3)))
