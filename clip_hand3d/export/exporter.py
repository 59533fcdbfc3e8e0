"""`export_model`: a `CLIPHand3DModel` and its processor -> an exported folder (see `folder`) for onnxruntime or
OpenVINO, float32 or int8.

Every export goes through one float32 ONNX graph (`onnx_backend.export_onnx_float`): written as it is (onnx fp32),
quantised by onnxruntime (onnx int8), or converted by OpenVINO and quantised by NNCF (openvino fp32 / int8).
"""

import shutil
import tempfile
from pathlib import Path

import torch

from clip_hand3d.modeling import CLIPHand3DModel
from clip_hand3d.validation import check_choice, check_positive_int

from . import calibration
from .folder import BACKENDS, MODEL_FILES, ExportConfig, save_model_files, torch_versions
from .graph import FLOAT_MODULES, InferenceGraph
from .onnx_backend import export_onnx_float, quantize_onnx

# The example batch the graph is traced with; the batch dimension stays dynamic.
TRACE_BATCH = 2
CALIBRATION_BATCH = 16


def export_model(
    model: CLIPHand3DModel,
    processor,
    out: str | Path,
    backend: str = "onnx",
    int8: bool = False,
    calibration_spec: str = calibration.DEFAULT_CALIBRATION,
    calibration_samples: int = calibration.DEFAULT_CALIBRATION_SAMPLES,
    source: str | None = None,
) -> ExportConfig:
    """Export `model`'s inference graph with `processor`, config and topology into the folder `out`.

    Args:
        model: the model to export (its text tower, if built, is not part of the graph).
        processor: the `CLIPHand3DProcessor` saved with the model.
        out: the folder to write; created, and must be empty if it exists.
        backend: "onnx" (model.onnx, for onnxruntime or OpenVINO) or "openvino" (openvino_model.xml / .bin).
        int8: static post-training int8 quantisation, calibrated on `calibration_spec` (see `calibration`) with
            `calibration_samples` crops; the layers of `graph.FLOAT_MODULES` stay in float.
        source: where the model came from, recorded in export_config.json.

    Returns the `ExportConfig` written as export_config.json.
    """
    check_choice("backend", backend, BACKENDS)
    check_positive_int("calibration_samples", calibration_samples)
    out = _empty_folder(out)
    model = model.cpu().eval()
    crops = calibration.calibration_crops(calibration_spec, processor, calibration_samples) if int8 else None
    size = model.config.image_size
    with tempfile.TemporaryDirectory() as scratch:
        float_path = Path(scratch) / "float.onnx"
        with torch.no_grad():
            export_onnx_float(InferenceGraph(model), torch.zeros(TRACE_BATCH, 3, size, size), float_path)
        details = _write_graph(float_path, out / MODEL_FILES[backend], backend, crops)
    save_model_files(model, processor, out)
    config = ExportConfig(
        backend=backend,
        precision="int8" if int8 else "fp32",
        image_size=size,
        num_joints=model.config.num_joints,
        num_vertices=model.config.level_sizes[-1],
        num_faces=int(model.faces.shape[0]),
        calibration=None if crops is None else {"spec": calibration_spec, "samples": len(crops), **details},
        float_modules=list(FLOAT_MODULES) if int8 else [],
        source=source,
        versions=torch_versions("onnx", "onnxruntime", "openvino", "nncf"),
    )
    config.save(out)
    return config


def export_pretrained(name_or_path: str, out: str | Path, **options) -> ExportConfig:
    """`export_model` of the model and processor saved in the folder or Hub repo `name_or_path` (`options`: those
    of `export_model`)."""
    from clip_hand3d.variants import load_processor

    model = CLIPHand3DModel.from_pretrained(name_or_path, with_text_model=False)
    processor = load_processor(name_or_path, model.config)
    return export_model(model, processor, out, source=str(name_or_path), **options)


def _write_graph(float_path: Path, target: Path, backend: str, crops) -> dict:
    """Write the graph at `target` for `backend`, quantised when `crops` are given; returns the quantiser's
    details ({} for float32)."""
    batches = None if crops is None else calibration.batches(crops, CALIBRATION_BATCH)
    if backend == "onnx":
        if batches is None:
            shutil.copyfile(float_path, target)
            return {}
        return quantize_onnx(float_path, target, batches)
    from .openvino_backend import convert_onnx, quantize_openvino, save_openvino

    model, details = convert_onnx(float_path), {}
    if batches is not None:
        model, details = quantize_openvino(model, batches)
    save_openvino(model, target)
    return details


def _empty_folder(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"the export folder {out} exists and is not empty: choose a new one")
    out.mkdir(parents=True, exist_ok=True)
    return out
