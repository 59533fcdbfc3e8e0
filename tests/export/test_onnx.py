"""ONNX export on onnxruntime: float32 parity with PyTorch, dynamic batch, int8, the folder, the pipeline."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clip_hand3d import HandMeshPipeline  # noqa: E402
from clip_hand3d.commands import main  # noqa: E402
from clip_hand3d.export import load_runtime  # noqa: E402
from clip_hand3d.export.folder import EXPORT_CONFIG_NAME, TOPOLOGY_NAME  # noqa: E402
from clip_hand3d.export.graph import keeps_float  # noqa: E402
from clip_hand3d.export.onnx_backend import quantizable_nodes  # noqa: E402

from .helpers import FLOAT_TOLERANCE, max_deviation, torch_outputs  # noqa: E402


@pytest.fixture(scope="module")
def onnx_fp32(tiny_dir, tmp_path_factory):
    """The tiny model exported by the command line, float32."""
    out = tmp_path_factory.mktemp("export") / "tiny-onnx"
    main(["export", "--model", str(tiny_dir), "--format", "onnx", "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def onnx_int8(tiny_dir, tmp_path_factory):
    """The tiny model exported int8, calibrated on 16 synthetic hands."""
    out = tmp_path_factory.mktemp("export") / "tiny-onnx-int8"
    main(["export", "--model", str(tiny_dir), "--format", "onnx", "--int8", "--calibration", "synthetic",
          "--calibration-samples", "16", "--out", str(out)])  # fmt: skip
    return out


def test_folder_holds_graph_config_topology_and_processor(onnx_fp32):
    names = {path.name for path in onnx_fp32.iterdir()}
    assert {"model.onnx", EXPORT_CONFIG_NAME, "config.json", TOPOLOGY_NAME, "processor_config.json"} <= names
    export_config = json.loads((onnx_fp32 / EXPORT_CONFIG_NAME).read_text())
    assert (export_config["backend"], export_config["precision"]) == ("onnx", "fp32")
    assert export_config["inputs"] == ["pixel_values"]
    assert export_config["outputs"] == ["joints_uvd", "vertices_uvd"]


def test_float32_matches_pytorch_at_every_batch_size(onnx_fp32, tiny_torch, crops):
    runtime = load_runtime(onnx_fp32)
    bound = FLOAT_TOLERANCE * tiny_torch.config.heatmap_size
    for pixel_values in (crops[:1], crops, torch.cat([crops, crops])):
        outputs = runtime(pixel_values=pixel_values)
        reference = torch_outputs(tiny_torch, pixel_values)
        assert outputs.joints_uvd.shape == reference.joints_uvd.shape
        assert outputs.vertices_uvd.shape == reference.vertices_uvd.shape
        assert max(max_deviation(outputs, reference)) < bound
    assert torch.equal(outputs.faces, tiny_torch.faces)


def test_runtime_takes_numpy_and_checks_shapes(onnx_fp32, crops):
    runtime = load_runtime(onnx_fp32, "onnxruntime")
    outputs = runtime(pixel_values=crops.numpy())
    assert outputs.joints_uvd.dtype == torch.float32
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, 128, 128\)"):
        runtime(pixel_values=crops[:, :, :64])
    with pytest.raises(ValueError, match="pixel_values only"):
        runtime(pixel_values=crops, text_input_ids=None)


def test_int8_quantises_the_encoder_keeps_heads_float_and_stays_close(onnx_int8, tiny_torch, crops):
    import onnx

    export_config = json.loads((onnx_int8 / EXPORT_CONFIG_NAME).read_text())
    assert export_config["precision"] == "int8"
    assert export_config["calibration"]["spec"] == "synthetic"
    assert export_config["calibration"]["samples"] == 16
    graph = onnx.load(str(onnx_int8 / "model.onnx")).graph
    quantized_inputs = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    quantized = {node.name for node in graph.node if set(node.input) & quantized_inputs}
    assert any("/model/backbone/" in name for name in quantized)
    assert any("/transformer/" in name for name in quantized)
    for name in quantized:
        assert not any(head in name for head in ("heatmap_", "depth_expand", "vertex_head")), name
    outputs = load_runtime(onnx_int8)(pixel_values=crops)
    reference = torch_outputs(tiny_torch, crops)
    assert max(max_deviation(outputs, reference)) < 0.01 * tiny_torch.config.heatmap_size


def test_quantizable_nodes_leave_out_the_topology_and_attention(onnx_fp32):
    import onnx

    graph = onnx.load(str(onnx_fp32 / "model.onnx")).graph
    chosen = set(quantizable_nodes(onnx.load(str(onnx_fp32 / "model.onnx"))))
    for node in graph.node:
        if node.op_type == "MatMul" and node.name.rsplit("/", 2)[-2] in ("mesh_regressor", "blocks.0"):
            assert node.name not in chosen  # topology products and attention's activation products
    assert all(not keeps_float(name) for name in chosen)


def test_pipeline_runs_on_the_exported_folder(onnx_fp32, tiny_dir):
    from clip_hand3d.data.synthetic.render import render_sample

    row = render_sample(0, 3, 224, "test")
    exported = HandMeshPipeline.from_pretrained(onnx_fp32, runtime="onnxruntime", detector=None)
    reference = HandMeshPipeline.from_pretrained(tiny_dir, detector=None)
    hand = exported(row["image"], boxes=[row["box"]])[0]
    expected = reference(row["image"], boxes=[row["box"]])[0]
    np.testing.assert_allclose(hand["keypoints_2d"], expected["keypoints_2d"], atol=1e-2)
    np.testing.assert_allclose(hand["vertices_3d"], expected["vertices_3d"], atol=1e-4)
    np.testing.assert_array_equal(hand["faces"], expected["faces"])
