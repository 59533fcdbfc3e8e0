"""Tests of the `evaluate` module evaluate_metrics/hand_mesh_metrics, loaded from its local folder without network."""

from pathlib import Path

import numpy as np
import pytest

from clip_hand3d.metrics import freihand_scores

METRIC_FOLDER = Path(__file__).resolve().parents[2] / "evaluate_metrics" / "hand_mesh_metrics"


@pytest.fixture
def hand_mesh_metrics(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    return evaluate.load(str(METRIC_FOLDER), cache_dir=str(tmp_path), keep_in_memory=True)


@pytest.fixture
def hands():
    """Predicted and ground-truth joints (3, 21, 3) and vertices (3, 40, 3), metres."""
    rng = np.random.default_rng(0)
    gt_joints = rng.normal(scale=0.04, size=(3, 21, 3))
    gt_vertices = rng.normal(scale=0.04, size=(3, 40, 3))
    pred_joints = gt_joints + rng.normal(scale=0.01, size=gt_joints.shape)
    pred_vertices = gt_vertices + rng.normal(scale=0.005, size=gt_vertices.shape)
    return pred_joints, gt_joints, pred_vertices, gt_vertices


def as_samples(joints: np.ndarray, vertices: np.ndarray | None = None) -> list[dict]:
    if vertices is None:
        return [{"joints": sample.tolist()} for sample in joints]
    return [{"joints": j.tolist(), "vertices": v.tolist()} for j, v in zip(joints, vertices, strict=True)]


def test_compute_with_vertices_equals_freihand_scores(hand_mesh_metrics, hands):
    pred_joints, gt_joints, pred_vertices, gt_vertices = hands
    scores = hand_mesh_metrics.compute(
        predictions=as_samples(pred_joints, pred_vertices), references=as_samples(gt_joints, gt_vertices)
    )
    expected = freihand_scores(pred_joints, gt_joints, pred_vertices, gt_vertices)
    assert scores.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(scores[key], value, rtol=0, atol=1e-12, err_msg=key)
    assert scores["pa_mpjpe"] > 1.0 and 0.0 < scores["f5"] < 1.0


def test_compute_with_joints_only_has_no_vertex_scores(hand_mesh_metrics, hands):
    pred_joints, gt_joints, _, _ = hands
    scores = hand_mesh_metrics.compute(predictions=as_samples(pred_joints), references=as_samples(gt_joints))
    expected = freihand_scores(pred_joints, gt_joints)
    assert scores.keys() == expected.keys()
    assert "f5" not in scores and "pa_mpvpe" not in scores
    assert scores["mpjpe"] == pytest.approx(expected["mpjpe"])


def test_moved_hand_has_an_absolute_error_only(hand_mesh_metrics):
    # The docstring's example: the ground truth moved by 3, 4, 0 mm.
    joints = [[0.01 * i, 0.002 * i * i, 0.5 + 0.001 * i] for i in range(21)]
    moved = [[x + 0.003, y + 0.004, z] for x, y, z in joints]
    scores = hand_mesh_metrics.compute(predictions=[{"joints": moved}], references=[{"joints": joints}])
    assert scores["mpjpe_absolute"] == pytest.approx(5.0)
    assert scores["mpjpe"] == pytest.approx(0.0, abs=1e-9) and scores["pa_mpjpe"] == pytest.approx(0.0, abs=1e-3)


def test_numpy_samples_and_incremental_adds_give_the_same_scores(hand_mesh_metrics, hands):
    pred_joints, gt_joints, pred_vertices, gt_vertices = hands
    hand_mesh_metrics.add(
        prediction={"joints": pred_joints[0], "vertices": pred_vertices[0]},
        reference={"joints": gt_joints[0], "vertices": gt_vertices[0]},
    )
    hand_mesh_metrics.add_batch(
        predictions=[{"joints": j, "vertices": v} for j, v in zip(pred_joints[1:], pred_vertices[1:], strict=True)],
        references=[{"joints": j, "vertices": v} for j, v in zip(gt_joints[1:], gt_vertices[1:], strict=True)],
    )
    scores = hand_mesh_metrics.compute()
    assert scores["pa_mpvpe"] == pytest.approx(freihand_scores(*hands)["pa_mpvpe"])
    assert scores["f15"] == pytest.approx(freihand_scores(*hands)["f15"])


def test_metric_description_names_the_inputs(hand_mesh_metrics):
    assert set(hand_mesh_metrics.features) == {"predictions", "references"}
    assert set(hand_mesh_metrics.features["predictions"]) == {"joints", "vertices"}
    assert "FreiHAND" in hand_mesh_metrics.description


def test_misspelt_key_is_an_error_not_silently_dropped(hand_mesh_metrics, hands):
    pred_joints, gt_joints, pred_vertices, _ = hands
    predictions = [
        {"joints": j.tolist(), "verts": v.tolist()} for j, v in zip(pred_joints, pred_vertices, strict=True)
    ]
    with pytest.raises(ValueError, match=r"predictions\[0\] has unknown keys \['verts'\]"):
        hand_mesh_metrics.compute(predictions=predictions, references=as_samples(gt_joints))


def test_vertices_on_one_side_only_is_an_error(hand_mesh_metrics, hands):
    pred_joints, gt_joints, _, gt_vertices = hands
    with pytest.raises(ValueError, match="references have 'vertices' but predictions do not"):
        hand_mesh_metrics.compute(predictions=as_samples(pred_joints), references=as_samples(gt_joints, gt_vertices))


def test_vertices_for_some_samples_only_is_an_error(hand_mesh_metrics, hands):
    pred_joints, gt_joints, pred_vertices, gt_vertices = hands
    predictions = as_samples(pred_joints, pred_vertices)
    del predictions[1]["vertices"]
    with pytest.raises(ValueError, match=r"predictions samples \[1\] have no 'vertices'"):
        hand_mesh_metrics.compute(predictions=predictions, references=as_samples(gt_joints, gt_vertices))


def test_points_that_are_not_3d_are_rejected(hand_mesh_metrics, hands):
    _, gt_joints, _, _ = hands
    flat = [{"joints": sample[:, :2].tolist()} for sample in gt_joints]
    with pytest.raises(ValueError, match="don't match the expected format"):
        hand_mesh_metrics.compute(predictions=flat, references=as_samples(gt_joints))


def test_different_joint_counts_and_nan_are_rejected(hand_mesh_metrics, hands):
    pred_joints, gt_joints, _, _ = hands
    with pytest.raises(ValueError, match=r"pred_joints has shape \(3, 20, 3\) but gt_joints has shape \(3, 21, 3\)"):
        hand_mesh_metrics.compute(predictions=as_samples(pred_joints[:, :20]), references=as_samples(gt_joints))
    pred_joints = pred_joints.copy()
    pred_joints[2, 5, 0] = np.nan
    with pytest.raises(ValueError, match=r"pred_joints contains NaN .*samples \[2\]"):
        hand_mesh_metrics.compute(predictions=as_samples(pred_joints), references=as_samples(gt_joints))


def test_empty_input_is_an_error(hand_mesh_metrics):
    with pytest.raises(ValueError, match="no samples"):
        hand_mesh_metrics.compute(predictions=[], references=[])
