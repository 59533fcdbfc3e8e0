"""ONNX: the graph by torch.onnx's exporter, int8 by onnxruntime's static quantisation, and the onnxruntime runtime.

float32: `torch.onnx.export(..., dynamo=False)` (the TorchScript-based exporter: a few seconds for every variant,
needs no onnxscript, and names each node by its module path) with a dynamic batch dimension, one self-contained
model.onnx.
int8: `onnxruntime.quantization.quantize_static` in QDQ format, unsigned 8-bit activations and signed 8-bit
per-channel weights (what onnxruntime's x86 kernels run with VNNI), calibrated by min-max over the calibration
crops, on the layers `graph` allows.
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .folder import INPUT_NAMES, OUTPUT_NAMES
from .graph import InferenceGraph, keeps_float
from .runtime import ExportedHandModel, check_runtime_device

OPSET = 18
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def export_onnx_float(graph: InferenceGraph, example: torch.Tensor, path: str | Path, opset: int = OPSET) -> None:
    """Write `graph` as an ONNX model at `path`, batch dimension dynamic, weights inside the file."""
    import onnx  # noqa: F401  (the exporter needs onnx: a clear ImportError here)

    dynamic = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with warnings.catch_warnings():
        # The shape checks of the forward are traced as constants: only the batch dimension varies, by design.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            graph.eval(),
            (example,),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )


def quantizable_nodes(model) -> list[str]:
    """Names of the nodes of an exported ONNX model (onnx.ModelProto) that int8 quantises: convolutions and matrix
    products of an activation by a constant weight, outside the float-kept modules (see `graph`)."""
    constants = {initializer.name for initializer in model.graph.initializer}
    constants |= {node.output[0] for node in model.graph.node if node.op_type == "Constant"}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in QUANTIZED_OP_TYPES
        and len(node.input) >= 2
        and node.input[0] not in constants
        and node.input[1] in constants
        and not keeps_float(node.name)
    ]


def crop_reader(batches: list[np.ndarray]):
    """onnxruntime's CalibrationDataReader over batches of crops."""
    from onnxruntime.quantization import CalibrationDataReader

    class CropReader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAMES[0]: batch}

    return CropReader()


def quantize_onnx(float_path: str | Path, int8_path: str | Path, calibration_batches: list[np.ndarray]) -> dict:
    """Static int8 quantisation of `float_path` into `int8_path`; returns what was done, for export_config.json."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    nodes = quantizable_nodes(onnx.load(str(float_path)))
    reader = crop_reader(calibration_batches)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # onnxruntime's recommended preparation: shape inference (so that every tensor gets a range) without graph
        # optimisation, which would rename the nodes chosen above.
        quant_pre_process(str(float_path), str(prepared), skip_optimization=True)
        quantize_static(
            str(prepared),
            str(int8_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
        )
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per channel",
        "method": "MinMax",
        "quantized_nodes": len(nodes),
    }


class OnnxRuntimeHandModel(ExportedHandModel):
    """An exported ONNX folder on onnxruntime (CPU, or CUDA where onnxruntime-gpu is installed).

    threads: onnxruntime's intra-op threads (None: its default, one per core).
    """

    runtime = "onnxruntime"

    def __init__(self, folder: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime

        super().__init__(folder)
        check_runtime_device(device)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.device = device
        self.session = onnxruntime.InferenceSession(
            str(self.folder / self.export_config.file), options, providers=_providers(onnxruntime, device)
        )

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints, vertices = self.session.run(list(OUTPUT_NAMES), {INPUT_NAMES[0]: pixels})
        return joints, vertices


def _providers(onnxruntime, device: str) -> list[str]:
    """onnxruntime's execution providers for `device`; a clear error when CUDA's is not installed."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ValueError(
            f"device 'cuda' was asked for but onnxruntime has no CUDAExecutionProvider (available: {available}); "
            "install onnxruntime-gpu"
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]
