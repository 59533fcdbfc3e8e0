"""Export for fast CPU inference: ONNX and OpenVINO graphs of the model, float32 or int8, and their runtimes.

    clip-hand3d export --model outputs/clip-hand3d-tiny --format onnx --int8 --out exported/tiny-int8

    from clip_hand3d import HandMeshPipeline
    pipe = HandMeshPipeline.from_pretrained("exported/tiny-int8", runtime="onnxruntime")

- `exporter`: `export_model` / `export_pretrained`, the folder `clip-hand3d export` writes (`folder`).
- `graph`: the exported inference graph and the layers int8 keeps in float.
- `calibration`: the crops int8 calibrates on.
- `onnx_backend`, `openvino_backend`: each toolkit's export, quantisation and runtime.
- `runtime`: `load_runtime`, one call for torch, onnxruntime and openvino.

Importing this package registers the runtimes "onnxruntime" and "openvino" with `HandMeshPipeline`; the toolkits
themselves (`pip install "clip-hand3d[export]"`) are imported only when a runtime or an export needs them.
"""

from clip_hand3d.pipeline import register_runtime

from .exporter import export_model, export_pretrained
from .folder import ExportConfig
from .runtime import RUNTIMES, ExportedHandModel, ExportedModelOutput, load_runtime


def _loader(runtime: str):
    """A `register_runtime` loader for the exported folders on `runtime`."""

    def load(name_or_path, device=None) -> ExportedHandModel:
        return load_runtime(name_or_path, runtime, device=str(device or "cpu"))

    return load


for _runtime in ("onnxruntime", "openvino"):
    register_runtime(_runtime, _loader(_runtime))

__all__ = [
    "RUNTIMES",
    "ExportConfig",
    "ExportedHandModel",
    "ExportedModelOutput",
    "export_model",
    "export_pretrained",
    "load_runtime",
]
