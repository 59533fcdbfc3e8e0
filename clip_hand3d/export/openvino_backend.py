"""OpenVINO: the exported ONNX graph converted by `openvino.convert_model`, int8 by NNCF, and the OpenVINO runtime.

float32: `openvino.convert_model` of the float ONNX graph, saved as openvino_model.xml / .bin with float32 weights
(not compressed to float16).
int8: `nncf.quantize` (static post-training quantisation, the MIXED preset: symmetric int8 weights per channel,
asymmetric activations), calibrated on the calibration crops, with an `IgnoredScope` over the layers `graph` keeps
in float and attention's activation-by-activation products (`float_kept_operations`).
"""

from pathlib import Path

import numpy as np

from clip_hand3d.validation import check_choice

from .folder import INPUT_NAMES, OUTPUT_NAMES
from .graph import keeps_float, node_module_path
from .runtime import ExportedHandModel, check_runtime_device

# Operations with weights, as `convert_model` names their types.
WEIGHTED_OP_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
# Suffixes `convert_model` appends to the ONNX node's name when it splits the node (the bias goes to an Add).
_SPLIT_SUFFIXES = ("/WithoutBiases",)
# What a weight reaches a layer through: a constant, possibly converted or reshaped.
_CONSTANT_TYPES = ("Constant", "Convert", "Reshape", "Transpose")
# OpenVINO's names for the precisions the runtime takes.
INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def convert_onnx(onnx_path: str | Path):
    """The float ONNX graph at `onnx_path` as an `openvino.Model`."""
    import openvino

    return openvino.convert_model(str(onnx_path))


def save_openvino(model, xml_path: str | Path) -> None:
    """Write `model` as `xml_path` and its .bin, float weights kept in float32."""
    import openvino

    openvino.save_model(model, str(xml_path), compress_to_fp16=False)


def float_kept_operations(model) -> list[str]:
    """Names of the weighted operations of a converted InferenceGraph that int8 keeps in float: the float-kept
    layers and topology products of `graph`, and matrix products without a constant operand (attention)."""
    names = []
    for operation in model.get_ops():
        if operation.get_type_name() not in WEIGHTED_OP_TYPES:
            continue
        name = operation.get_friendly_name()
        onnx_name = next((name[: -len(s)] for s in _SPLIT_SUFFIXES if name.endswith(s)), name)
        # Operations convert_model renamed (the deconvolutions) carry no module path: they are quantised.
        named = bool(node_module_path(onnx_name))
        if (named and keeps_float(onnx_name)) or not _has_constant_operand(operation):
            names.append(name)
    return names


def _has_constant_operand(operation) -> bool:
    sources = [value.get_node() for value in operation.input_values()]
    return any(source.get_type_name() in _CONSTANT_TYPES and _is_constant(source) for source in sources)


def _is_constant(node) -> bool:
    """Whether `node` computes from constants only (a weight, possibly converted or reshaped)."""
    if node.get_type_name() == "Constant":
        return True
    if node.get_type_name() not in _CONSTANT_TYPES:
        return False
    return all(_is_constant(value.get_node()) for value in node.input_values())


def quantize_openvino(model, calibration_batches: list[np.ndarray]):
    """Static int8 quantisation of the converted `model` by NNCF; returns (int8 model, what was done)."""
    import nncf

    ignored = float_kept_operations(model)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration_batches),
        preset=nncf.QuantizationPreset.MIXED,
        # NNCF counts the dataset's items, here batches of crops: every batch is used.
        subset_size=len(calibration_batches),
        ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
    )
    details = {
        "tool": "nncf.quantize",
        "preset": "MIXED",
        "activations": "int8 asymmetric",
        "weights": "int8 symmetric per channel",
        "float_operations": len(ignored),
    }
    return quantized, details


class OpenVINOHandModel(ExportedHandModel):
    """An exported OpenVINO folder (or an ONNX one) on OpenVINO's CPU plugin, or its GPU plugin for device "cuda"
    (an Intel GPU: OpenVINO runs no NVIDIA GPU).

    threads: inference threads (None: OpenVINO's default). precision_hint: "fp32" (default) or "bf16", the
    precision the float layers run in (bf16 where the CPU has native bfloat16; OpenVINO's own default there).
    """

    runtime = "openvino"

    def __init__(
        self, folder: str | Path, device: str = "cpu", threads: int | None = None, precision_hint: str | None = None
    ):
        import openvino

        super().__init__(folder)
        check_runtime_device(device)
        precision_hint = precision_hint or "fp32"
        check_choice("precision_hint", precision_hint, tuple(INFERENCE_PRECISIONS))
        properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS[precision_hint]}
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        core = openvino.Core()
        plugin = "GPU" if device == "cuda" else "CPU"
        if plugin not in core.available_devices:
            raise ValueError(f"OpenVINO has no {plugin} device here (available: {core.available_devices})")
        self.device = device
        self.compiled = core.compile_model(str(self.folder / self.export_config.file), plugin, properties)
        self.request = self.compiled.create_infer_request()

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        results = self.request.infer({INPUT_NAMES[0]: pixels})
        outputs = {output.get_any_name(): value for output, value in results.items()}
        return outputs[OUTPUT_NAMES[0]].copy(), outputs[OUTPUT_NAMES[1]].copy()
