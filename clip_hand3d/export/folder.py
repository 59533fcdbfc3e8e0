"""The exported folder: what `clip-hand3d export` writes and the runtimes read.

    OUT/
      export_config.json     format, backend, precision, file, inputs and outputs, calibration, versions
      model.onnx             (backend "onnx") or openvino_model.xml + openvino_model.bin (backend "openvino")
      config.json            the model's config (uvd space, sizes), so that evaluation code reads the runtime
                             like the model
      topology.safetensors   the model's mesh topology (`topology_io.save_topology`): its faces go with every
                             output; a custom topology (e.g. from MANO) stays local like the checkpoint it came from
      processor_config.json, tokenizer files   the processor saved with the model

The graph takes `pixel_values` (B, 3, S, S) float32, B dynamic, and returns `joints_uvd` (B, 21, 3) and
`vertices_uvd` (B, V, 3) in the model's uvd space; the text tower is never exported.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel, HandTopology
from clip_hand3d.validation import check_choice

EXPORT_FORMAT = "clip-hand3d-export"
EXPORT_VERSION = 1
EXPORT_CONFIG_NAME = "export_config.json"
TOPOLOGY_NAME = "topology.safetensors"
BACKENDS = ("onnx", "openvino")
PRECISIONS = ("fp32", "int8")
MODEL_FILES = {"onnx": "model.onnx", "openvino": "openvino_model.xml"}
INPUT_NAMES = ("pixel_values",)
OUTPUT_NAMES = ("joints_uvd", "vertices_uvd")


@dataclass
class ExportConfig:
    """The contents of `export_config.json`."""

    backend: str
    precision: str
    image_size: int
    num_joints: int
    num_vertices: int
    num_faces: int
    file: str = ""
    inputs: list[str] = field(default_factory=lambda: list(INPUT_NAMES))
    outputs: list[str] = field(default_factory=lambda: list(OUTPUT_NAMES))
    calibration: dict | None = None
    float_modules: list[str] = field(default_factory=list)
    source: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    format: str = EXPORT_FORMAT
    version: int = EXPORT_VERSION

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, BACKENDS)
        check_choice("precision", self.precision, PRECISIONS)
        self.file = self.file or MODEL_FILES[self.backend]

    def save(self, folder: str | Path) -> None:
        """Write export_config.json into `folder`."""
        Path(folder, EXPORT_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> "ExportConfig":
        """Read `folder`'s export_config.json; a clear error when the folder is missing or is no export."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"exported model folder {folder} does not exist")
        path = folder / EXPORT_CONFIG_NAME
        if not path.is_file():
            hint = (
                " It holds a PyTorch checkpoint: load it with --runtime torch, or export it first with "
                f"`clip-hand3d export --model {folder} --format onnx --out DIR`."
                if (folder / "config.json").is_file()
                else ""
            )
            raise ValueError(f"{folder} is not an exported clip-hand3d model: it has no {EXPORT_CONFIG_NAME}.{hint}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error})") from None
        if not isinstance(values, dict) or values.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path} is not a clip-hand3d export config (format must be {EXPORT_FORMAT!r})")
        if values.get("version", 0) > EXPORT_VERSION:
            raise ValueError(
                f"{path} has export version {values['version']}, this clip-hand3d reads up to {EXPORT_VERSION}: "
                "upgrade clip-hand3d"
            )
        known = set(cls.__dataclass_fields__)
        config = cls(**{name: value for name, value in values.items() if name in known})
        if not (folder / config.file).is_file():
            raise FileNotFoundError(f"{folder} lists {config.file} in {EXPORT_CONFIG_NAME}, but the file is missing")
        return config


def model_topology(model: CLIPHand3DModel) -> HandTopology:
    """The topology `model` runs with (built-in or set with `set_topology`), read from its buffers."""
    buffers = model.mesh_regressor.topology.state_dict()
    return HandTopology.from_state_dict({name: tensor.detach().cpu() for name, tensor in buffers.items()})


def save_model_files(model: CLIPHand3DModel, processor, folder: str | Path) -> None:
    """Write the config, topology and processor of `model` beside the exported graph."""
    from clip_hand3d.topology_io import save_topology

    folder = Path(folder)
    model.config.save_pretrained(folder)
    save_topology(model_topology(model), folder / TOPOLOGY_NAME)
    processor.save_pretrained(folder)


def load_config(folder: str | Path) -> CLIPHand3DConfig:
    """The model config saved beside the exported graph."""
    return CLIPHand3DConfig.from_pretrained(str(folder))


def load_faces(folder: str | Path) -> torch.Tensor:
    """The faces (F, 3) int64 of the topology saved in `folder`."""
    from clip_hand3d.topology_io import load_topology

    return load_topology(Path(folder) / TOPOLOGY_NAME).faces.long()


def torch_versions(*modules: str) -> dict[str, str]:
    """Versions of torch and the given toolkits, for export_config.json."""
    import importlib.metadata

    versions = {"torch": torch.__version__}
    for name in modules:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
