import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.modeling.hand_joints import JOINT_NAMES
from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.prompts import build_prompts_batch
from clip_hand3d.tokenization import LOCAL_VOCAB_SIZE


@pytest.fixture(scope="module")
def processor() -> CLIPHand3DProcessor:
    return CLIPHand3DProcessor()


def random_joints(batch_size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.05, size=(batch_size, 21, 3)) + (0.0, 0.0, 0.6)


def images(batch_size: int) -> list[np.ndarray]:
    return [np.random.default_rng(index).integers(0, 256, (64, 48, 3), dtype=np.uint8) for index in range(batch_size)]


def test_defaults(processor):
    assert isinstance(processor.image_processor, CLIPHand3DImageProcessor)
    assert len(processor.tokenizer) == LOCAL_VOCAB_SIZE
    assert (processor.num_prompt_joints, processor.max_text_length) == (21, 77)


def test_images_and_joints(processor):
    joints = random_joints(2)
    features = processor(
        images=images(2),
        is_left=[False, True],
        joints_xyz=joints,
        generator=np.random.default_rng(0),
        return_prompts=True,
    )
    assert features["pixel_values"].shape == (2, 3, 224, 224)
    assert features["crop_transforms"].shape == (2, 2, 3) and features["is_left"].tolist() == [False, True]
    for name in ("text_input_ids", "text_attention_mask"):
        assert features[name].shape == (2, 3, 77) and features[name].dtype == torch.int64
    # The same draw of joints (same seed) gives the same prompts, in x, y, z order.
    texts = build_prompts_batch(joints, 21, np.random.default_rng(0))
    assert features["prompts"] == list(zip(*texts, strict=True))
    for sample in range(2):
        for axis in range(3):
            ids = processor.tokenizer(texts[axis][sample])["input_ids"]
            assert features["text_input_ids"][sample, axis, : len(ids)].tolist() == ids
            assert features["text_attention_mask"][sample, axis].tolist() == [1] * len(ids) + [0] * (77 - len(ids))
            assert features["text_input_ids"][sample, axis, len(ids) :].eq(processor.tokenizer.pad_token_id).all()


def test_images_only_and_joints_only(processor):
    image_features = processor(images=images(1))
    assert set(image_features) == {"pixel_values", "crop_transforms", "is_left", "original_sizes"}
    text_features = processor(joints_xyz=torch.tensor(random_joints(3)), return_tensors="np")
    assert set(text_features) == {"text_input_ids", "text_attention_mask"}
    assert isinstance(text_features["text_input_ids"], np.ndarray) and text_features["text_input_ids"].shape[0] == 3


def test_number_of_prompt_joints_and_truncation():
    processor = CLIPHand3DProcessor(num_prompt_joints=4, max_text_length=12)
    features = processor(joints_xyz=random_joints(2), generator=np.random.default_rng(1), return_prompts=True)
    for prompts in features["prompts"]:
        for text in prompts:
            names = text.split(" the joints are ")[1].removesuffix(".").replace(" and ", " ").split(", ")
            assert len(names) == 4 and set(names) <= set(JOINT_NAMES)
    assert features["text_input_ids"].shape == (2, 3, 12)
    # A prompt of 4 joints takes more than 12 tokens: truncated, it still ends with the end token.
    assert features["text_input_ids"][:, :, -1].eq(processor.tokenizer.eos_token_id).all()
    assert features["text_attention_mask"].eq(1).all()


def test_call_errors(processor):
    with pytest.raises(ValueError, match="pass images, joints_xyz or both"):
        processor()
    with pytest.raises(ValueError, match="got 2 images but 3 samples of joints_xyz"):
        processor(images=images(2), joints_xyz=random_joints(3))
    with pytest.raises(ValueError, match="return_prompts=True needs joints_xyz"):
        processor(images=images(1), return_prompts=True)
    with pytest.raises(ValueError, match=r"num_prompt_joints must be in 1\.\.21, got 0"):
        CLIPHand3DProcessor(num_prompt_joints=0)
    with pytest.raises(ValueError, match="max_text_length must be an int >= 2"):
        CLIPHand3DProcessor(max_text_length=1)


def test_save_and_load_round_trip(tmp_path):
    processor = CLIPHand3DProcessor(
        image_processor=CLIPHand3DImageProcessor(image_size=128, heatmap_size=32),
        num_prompt_joints=10,
        max_text_length=40,
    )
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "CLIPHand3DProcessor"
    assert (saved["num_prompt_joints"], saved["max_text_length"]) == (10, 40)
    assert saved["image_processor"]["image_size"] == 128
    assert (tmp_path / "tokenizer.json").is_file()

    inputs = {"images": images(2), "boxes": [None, (5, 5, 30, 40)], "joints_xyz": random_joints(2)}
    expected = processor(**inputs, generator=np.random.default_rng(3))
    for loaded in (CLIPHand3DProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is CLIPHand3DProcessor
        assert (loaded.num_prompt_joints, loaded.max_text_length) == (10, 40)
        assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
        features = loaded(**inputs, generator=np.random.default_rng(3))
        assert set(features) == set(expected)
        for name in expected:
            assert torch.equal(features[name], expected[name]), name


def test_post_process_delegates_to_the_image_processor(processor):
    features = processor(images=images(2), is_left=[True, False])
    uvd = torch.tensor(np.random.default_rng(4).uniform(20, 36, size=(2, 21, 3)))
    uvd[:, 0, 2] = 28  # the wrist in the middle depth bin, at the root depth
    outputs = SimpleNamespace(joints_uvd=uvd, vertices_uvd=uvd[:, :5], faces=torch.zeros(1, 3, dtype=torch.long))
    K = np.array([[500.0, 0.0, 24.0], [0.0, 500.0, 32.0], [0.0, 0.0, 1.0]])
    results = processor.post_process(outputs, features, K=K, root_depth=[0.5, 0.7])
    expected = processor.image_processor.post_process(outputs, features, K=K, root_depth=[0.5, 0.7])
    assert len(results) == 2
    for result, reference in zip(results, expected, strict=True):
        assert set(result) == {"keypoints_2d", "joints_3d", "vertices_3d", "faces", "joints_cam", "vertices_cam"}
        for name in result:
            np.testing.assert_array_equal(result[name], reference[name])
    np.testing.assert_allclose([result["joints_cam"][0, 2] for result in results], [0.5, 0.7])
