"""The accuracy comparison of a runtime against the PyTorch model, after post-processing, in mm."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from clip_hand3d.export import export_pretrained, load_runtime  # noqa: E402
from clip_hand3d.export.accuracy import compare_on_split, deviation_mm  # noqa: E402
from clip_hand3d.variants import load_processor  # noqa: E402


def test_deviation_is_the_per_point_distance_in_mm():
    reference = {"pred_joints": np.zeros((2, 21, 3)), "pred_vertices": np.zeros((2, 778, 3))}
    candidate = {"pred_joints": np.zeros((2, 21, 3)), "pred_vertices": np.zeros((2, 778, 3))}
    candidate["pred_joints"][0, 3] = (0.003, 0.004, 0.0)  # 5 mm
    deviation = deviation_mm(reference, candidate)
    assert deviation["joints_max_mm"] == pytest.approx(5.0)
    assert deviation["joints_mean_mm"] == pytest.approx(5.0 / 42)
    assert deviation["vertices_max_mm"] == 0.0


def test_float32_export_scores_like_pytorch(tiny_dir, tiny_torch, tmp_path):
    export_pretrained(str(tiny_dir), tmp_path / "onnx")
    processor = load_processor(str(tiny_dir), tiny_torch.config)
    report = compare_on_split(tiny_torch, load_runtime(tmp_path / "onnx"), processor, "synthetic", 8)
    assert report["samples"] == 8
    assert report["deviation"]["joints_max_mm"] < 0.1 and report["deviation"]["vertices_max_mm"] < 0.1
    assert abs(report["pa_mpjpe_loss_mm"]) < 0.01
