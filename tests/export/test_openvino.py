"""OpenVINO export: float32 parity with PyTorch, dynamic batch, int8 by NNCF, the ONNX folder on OpenVINO."""

import json

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("openvino")

from clip_hand3d import HandMeshPipeline  # noqa: E402
from clip_hand3d.export import export_pretrained, load_runtime  # noqa: E402
from clip_hand3d.export.folder import EXPORT_CONFIG_NAME  # noqa: E402

from .helpers import FLOAT_TOLERANCE, max_deviation, torch_outputs  # noqa: E402


@pytest.fixture(scope="module")
def openvino_fp32(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny-openvino"
    export_pretrained(str(tiny_dir), out, backend="openvino")
    return out


def test_float32_matches_pytorch_at_every_batch_size(openvino_fp32, tiny_torch, crops):
    assert {"openvino_model.xml", "openvino_model.bin"} <= {path.name for path in openvino_fp32.iterdir()}
    runtime = load_runtime(openvino_fp32)
    assert runtime.runtime == "openvino"
    bound = FLOAT_TOLERANCE * tiny_torch.config.heatmap_size
    for pixel_values in (crops[:1], crops):
        outputs = runtime(pixel_values=pixel_values)
        assert max(max_deviation(outputs, torch_outputs(tiny_torch, pixel_values))) < bound
    assert torch.equal(outputs.faces, tiny_torch.faces)


def test_int8_by_nncf_runs_and_stays_close(tiny_dir, tiny_torch, crops, tmp_path):
    pytest.importorskip("nncf")
    out = tmp_path / "tiny-openvino-int8"
    export_pretrained(
        str(tiny_dir), out, backend="openvino", int8=True, calibration_spec="random", calibration_samples=8
    )
    calibration = json.loads((out / EXPORT_CONFIG_NAME).read_text())["calibration"]
    assert calibration["tool"] == "nncf.quantize" and calibration["float_operations"] > 0
    outputs = load_runtime(out)(pixel_values=crops)
    assert max(max_deviation(outputs, torch_outputs(tiny_torch, crops))) < 0.01 * tiny_torch.config.heatmap_size
    import openvino

    graph = openvino.Core().read_model(str(out / "openvino_model.xml"))
    deconvolutions = [op for op in graph.get_ops() if op.get_type_name() == "ConvolutionBackpropData"]
    assert deconvolutions and all(
        op.input_value(0).get_node().get_type_name() == "FakeQuantize" for op in deconvolutions
    )


def test_openvino_runs_an_onnx_folder_and_the_pipeline_takes_it(tiny_dir, tiny_torch, crops, tmp_path):
    out = tmp_path / "tiny-onnx"
    export_pretrained(str(tiny_dir), out, backend="onnx")
    runtime = load_runtime(out, "openvino", precision_hint="fp32")
    bound = FLOAT_TOLERANCE * tiny_torch.config.heatmap_size
    assert max(max_deviation(runtime(pixel_values=crops), torch_outputs(tiny_torch, crops))) < bound
    pipe = HandMeshPipeline.from_pretrained(out, runtime="openvino", detector=None)
    hands = pipe(torch.zeros(3, 96, 96).numpy().transpose(1, 2, 0) + 0.5)
    assert hands[0]["vertices_3d"].shape == (tiny_torch.config.level_sizes[-1], 3)


def test_openvino_folder_is_not_for_onnxruntime(openvino_fp32):
    with pytest.raises(ValueError, match="exported for openvino, which onnxruntime cannot run; use runtime openvino"):
        load_runtime(openvino_fp32, "onnxruntime")
