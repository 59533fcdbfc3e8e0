"""Runtimes of an exported folder: objects that are called like `CLIPHand3DModel` for inference.

    runtime = load_runtime("exported/tiny-int8")            # the backend the folder was exported for
    outputs = runtime(pixel_values=inputs["pixel_values"])   # joints_uvd, vertices_uvd, faces (torch tensors)
    hands = processor.post_process(outputs, inputs)

`load_runtime(folder, "torch")` loads a PyTorch checkpoint folder instead, so that the pipeline and the Space
take `--runtime torch | onnxruntime | openvino` through one call. A runtime has `config` (the model's config),
`processor_path` (the folder, for `CLIPHand3DProcessor.from_pretrained`) and `eval()`, so code written for the model
(`clip_hand3d.evaluation.predict`) runs on it unchanged.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers.utils import ModelOutput

from clip_hand3d.modeling import CLIPHand3DModel
from clip_hand3d.validation import check_choice

from .folder import ExportConfig, load_config, load_faces

RUNTIMES = ("torch", "onnxruntime", "openvino")
DEVICES = ("cpu", "cuda")
# Which runtimes read which exported backend: OpenVINO reads ONNX files too.
READERS = {"onnx": ("onnxruntime", "openvino"), "openvino": ("openvino",)}
DEFAULT_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}


@dataclass
class ExportedModelOutput(ModelOutput):
    """What an exported runtime returns: the inference fields of `CLIPHand3DOutput`, float32 torch tensors on the
    CPU. joints_uvd (B, 21, 3), vertices_uvd (B, V, 3) in the model's uvd space; faces (F, 3) int64."""

    joints_uvd: torch.FloatTensor | None = None
    vertices_uvd: torch.FloatTensor | None = None
    faces: torch.LongTensor | None = None


class ExportedHandModel:
    """Base of the runtimes: reads the folder (export config, model config, faces) and checks the inputs."""

    runtime = ""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.export_config = ExportConfig.load(self.folder)
        if self.runtime not in READERS[self.export_config.backend]:
            raise ValueError(
                f"{self.folder} was exported for {self.export_config.backend}, which {self.runtime} cannot run; "
                f"use runtime {' or '.join(READERS[self.export_config.backend])}"
            )
        self.config = load_config(self.folder)
        self.faces = load_faces(self.folder)
        self.processor_path = str(self.folder)

    @property
    def precision(self) -> str:
        """The exported graph's precision: "fp32" or "int8"."""
        return self.export_config.precision

    def eval(self) -> "ExportedHandModel":
        """Nothing to switch (an exported graph is always in inference mode); here for code written for models."""
        return self

    def __call__(self, pixel_values, **unsupported) -> ExportedModelOutput:
        """pixel_values (B, 3, S, S), a torch tensor or numpy array -> joints_uvd, vertices_uvd, faces."""
        if unsupported:
            raise ValueError(
                f"an exported model takes pixel_values only (inference; no text inputs or labels), got "
                f"{sorted(unsupported)}"
            )
        pixels = self._as_input(pixel_values)
        joints, vertices = self.run(pixels)
        return ExportedModelOutput(
            joints_uvd=torch.from_numpy(np.ascontiguousarray(joints, dtype=np.float32)),
            vertices_uvd=torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)),
            faces=self.faces,
        )

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backend's inference: (B, 3, S, S) float32 -> joints (B, 21, 3), vertices (B, V, 3)."""
        raise NotImplementedError

    def _as_input(self, pixel_values) -> np.ndarray:
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().cpu().float().numpy()
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        size = self.export_config.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise ValueError(f"pixel_values must have shape (batch, 3, {size}, {size}), got {tuple(pixels.shape)}")
        return pixels

    def __repr__(self) -> str:
        config = self.export_config
        return f"{type(self).__name__}({str(self.folder)!r}, {config.backend} {config.precision})"


def check_runtime_device(device: str) -> None:
    """Raise ValueError unless `device` is "cpu" or "cuda"."""
    check_choice("device", device, DEVICES)


def load_runtime(
    folder: str | Path,
    runtime: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    precision_hint: str | None = None,
):
    """The runtime for `folder`: an exported folder on `runtime` (default: the backend it was exported for), or a
    PyTorch checkpoint folder or Hub id with runtime "torch" (`CLIPHand3DModel`, text tower left out, eval mode).

    device: "cpu" or "cuda" (onnxruntime's CUDA provider, OpenVINO's "GPU" device). threads: intra-op threads
    (default: the runtime's). precision_hint: OpenVINO only, "bf16" to run float layers in bfloat16 where the CPU
    has it (default: float32).
    """
    if runtime is not None:
        check_choice("runtime", runtime, RUNTIMES)
    check_runtime_device(device)
    if runtime == "torch":
        if precision_hint not in (None, "fp32"):
            raise ValueError("precision_hint is for the openvino runtime; torch runs the checkpoint as it is")
        return CLIPHand3DModel.from_pretrained(str(folder), with_text_model=False).to(device).eval()
    backend = ExportConfig.load(folder).backend
    runtime = runtime or DEFAULT_RUNTIME[backend]
    if runtime == "onnxruntime":
        if precision_hint not in (None, "fp32"):
            raise ValueError(
                f"precision_hint {precision_hint!r}: onnxruntime's CPU provider has no bfloat16 kernels; "
                "run the openvino runtime, or an int8 export"
            )
        from .onnx_backend import OnnxRuntimeHandModel

        return OnnxRuntimeHandModel(folder, device=device, threads=threads)
    from .openvino_backend import OpenVINOHandModel

    return OpenVINOHandModel(folder, device=device, threads=threads, precision_hint=precision_hint)
