"""The export's contract beyond the graph: a custom topology is kept; bad arguments and folders give clear errors."""

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clip_hand3d.commands import main  # noqa: E402
from clip_hand3d.export import export_model, export_pretrained, load_runtime  # noqa: E402
from clip_hand3d.export.calibration import calibration_crops  # noqa: E402
from clip_hand3d.export.folder import EXPORT_CONFIG_NAME, ExportConfig  # noqa: E402
from clip_hand3d.modeling import CLIPHand3DModel, HandTopology  # noqa: E402
from clip_hand3d.topology_io import load_topology  # noqa: E402
from clip_hand3d.variants import load_processor  # noqa: E402

from .helpers import FLOAT_TOLERANCE, max_deviation, torch_outputs  # noqa: E402


def custom_topology() -> HandTopology:
    """The built-in hand with its template scaled, upsampling rows permuted and faces reversed: another topology of
    the same sizes."""
    topology = HandTopology.builtin().clone()
    topology.template_vertices = [vertices * 1.3 for vertices in topology.template_vertices]
    topology.upsample = [matrix.flip(0) for matrix in topology.upsample]
    topology.faces = topology.faces.flip(1)
    return topology


def test_a_custom_topology_is_kept(tiny_dir, tmp_path, crops):
    model = CLIPHand3DModel.from_pretrained(str(tiny_dir), with_text_model=False).eval()
    model.set_topology(custom_topology())
    out = tmp_path / "custom"
    export_model(model, load_processor(str(tiny_dir), model.config), out)
    saved = load_topology(out / "topology.safetensors")
    for name, tensor in custom_topology().to_state_dict().items():
        torch.testing.assert_close(saved.to_state_dict()[name], tensor, rtol=0, atol=0)
    runtime = load_runtime(out)
    outputs = runtime(pixel_values=crops)
    assert torch.equal(outputs.faces, custom_topology().faces)
    assert runtime.config.topology == "custom"
    bound = FLOAT_TOLERANCE * model.config.heatmap_size
    assert max(max_deviation(outputs, torch_outputs(model, crops))) < bound


def test_bad_arguments_name_the_problem(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match=r"backend must be one of \('onnx', 'openvino'\), got 'tflite'"):
        export_pretrained(str(tiny_dir), tmp_path / "a", backend="tflite")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_pretrained(str(tiny_dir), tmp_path / "full")
    with pytest.raises(ValueError, match="calibration_samples must be a positive integer"):
        export_pretrained(str(tiny_dir), tmp_path / "b", int8=True, calibration_samples=0)
    processor = load_processor(str(tiny_dir), CLIPHand3DModel.config_class.from_pretrained(str(tiny_dir)))
    with pytest.raises(ValueError, match="expected random or random:N with a positive N"):
        calibration_crops("random:zero", processor)


def test_command_line_errors_are_one_line(tiny_dir, tmp_path, capsys):
    with pytest.raises(SystemExit, match="--calibration is for --int8 exports"):
        main(["export", "--model", str(tiny_dir), "--format", "onnx", "--calibration", "random", "--out", "x"])
    with pytest.raises(SystemExit):
        main(["export", "--model", str(tiny_dir), "--format", "tflite", "--out", str(tmp_path / "c")])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="clip-hand3d export: error: .*does not exist|clip-hand3d export: error"):
        main(["export", "--model", str(tmp_path / "missing"), "--format", "onnx", "--out", str(tmp_path / "d")])


def test_runtime_rejects_folders_that_are_no_export(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="has no export_config.json. It holds a PyTorch checkpoint"):
        load_runtime(tiny_dir, "onnxruntime")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runtime(tmp_path / "missing", "onnxruntime")
    with pytest.raises(ValueError, match=r"runtime must be one of \('torch', 'onnxruntime', 'openvino'\)"):
        load_runtime(tiny_dir, "tensorrt")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / EXPORT_CONFIG_NAME).write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="is not a clip-hand3d export config"):
        ExportConfig.load(tmp_path / "bad")


def test_torch_runtime_loads_the_checkpoint(tiny_dir):
    model = load_runtime(tiny_dir, "torch")
    assert isinstance(model, CLIPHand3DModel) and not model.training
