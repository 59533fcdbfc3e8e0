"""Runtimes side by side: PyTorch, onnxruntime and OpenVINO at fp32 / bf16 / int8, and MediaPipe Hands, timed in one
interleaved loop so that the machine's load hits them alike and every figure can be read as a ratio.

For a variant (random weights: speed does not depend on them), `measure_runtimes` exports the model once per
backend and precision it needs (`clip_hand3d.export`, int8 calibrated on random crops: ranges do not change the
speed), then times per batch size:

- the network alone: each engine on the same (B, 3, S, S) crops; MediaPipe Hands (palm detection and landmarks,
  21 points and no mesh) on one image, at batch 1 only;
- the whole pipeline (`HandMeshPipeline.predict`: detection, crops, network, post-process) on one synthetic photo
  with one hand: at batch 1 with MediaPipe's detector; at batch B > 1 with the photo's hand box given B times (no
  detection: MediaPipe's landmark model runs once per hand, so B hands cost it B times).

Engines are named "runtime/precision". Combinations no toolkit runs are skipped with the reason (`skipped`):
torch has no int8 path here, onnxruntime's CPU provider no bfloat16 kernels.

`device="cuda"` prepares the GPU path: torch in bf16 autocast and channels-last, `torch.compile` when `compile` is
set (mode "reduce-overhead": CUDA graphs, the launch-bound batch-1 case), onnxruntime's CUDA provider where
onnxruntime-gpu is installed; OpenVINO and MediaPipe run no NVIDIA GPU and are skipped with that reason.
"""

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..validation import check_choice, check_non_negative_int, check_positive_int
from ..variants import load_processor
from .measure import SEED, _time_ms, check_device, load_variant_config, random_pixel_values, random_weight_model
from .meters import OtherProcessesCPU

RUNTIMES = ("torch", "onnxruntime", "openvino")
RUNTIME_PRECISIONS = ("fp32", "bf16", "int8")
MEDIAPIPE = "mediapipe/fp32"
# The synthetic photo the pipeline rows run on: a hand of the synthetic test split, PHOTO_SIZE pixels a side, that
# MediaPipe finds (score 0.99; synthetic data version 2).
PHOTO_INDEX, PHOTO_SEED, PHOTO_SIZE = 9, 7, 256
CALIBRATION = "random"
CALIBRATION_SAMPLES = 16


@dataclass
class Engine:
    """One runtime at one precision: `model` is called as model(pixel_values=...) (a CLIPHand3DModel's call or an
    exported runtime), `prepare` turns the crops into its input."""

    name: str
    model: Callable
    prepare: Callable[[torch.Tensor], object]
    device: str

    def __call__(self, pixel_values: torch.Tensor) -> object:
        return self.model(pixel_values=self.prepare(pixel_values))


def skip_reason(runtime: str, precision: str, device: str) -> str | None:
    """Why `runtime` at `precision` on `device` is not measured, or None when it is."""
    if runtime == "torch" and precision == "int8":
        return "torch int8: no quantised PyTorch path here; int8 runs on onnxruntime and openvino"
    if runtime == "onnxruntime" and precision == "bf16":
        return "onnxruntime bf16: its CPU provider has no bfloat16 kernels"
    if runtime == "openvino" and device == "cuda":
        return "openvino on cuda: OpenVINO runs Intel GPUs, not NVIDIA's"
    if runtime != "torch" and not _toolkit_installed(runtime, precision):
        return f'{runtime} {precision}: not installed (pip install "clip-hand3d[export]")'
    return None


def _toolkit_installed(runtime: str, precision: str) -> bool:
    import importlib.util

    modules = {"onnxruntime": ["onnx", "onnxruntime"], "openvino": ["onnx", "openvino"]}[runtime]
    if runtime == "openvino" and precision == "int8":
        modules.append("nncf")
    return all(importlib.util.find_spec(name) is not None for name in modules)


def mediapipe_skip_reason(device: str) -> str | None:
    """Why MediaPipe Hands is not measured, or None when it is."""
    import importlib.util

    if device == "cuda":
        return "mediapipe on cuda: MediaPipe's Python package runs on the CPU"
    if importlib.util.find_spec("mediapipe") is None:
        return 'mediapipe: not installed (pip install "clip-hand3d[detect]")'
    return None


def torch_engine(model, precision: str, device: str, compile: bool = False) -> Engine:
    """The PyTorch model at fp32, or at bf16 (bfloat16 autocast and channels-last), optionally torch.compile'd."""
    layout = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model = model.to(device=device, memory_format=layout).eval()
    forward = model
    if compile:
        forward = torch.compile(model, mode="reduce-overhead" if device == "cuda" else "default")

    def run(pixel_values: torch.Tensor) -> object:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return forward(pixel_values=pixel_values)

    def prepare(pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.to(device).contiguous(memory_format=layout)

    suffix = "+compile" if compile else ""
    return Engine(f"torch/{precision}{suffix}", run, prepare, device)


def exported_engines(
    model, processor, pairs: list[tuple[str, str]], folder: Path, device: str, threads: int | None
) -> list[Engine]:
    """Engines of the exported runtimes in `pairs` ((runtime, precision)): each export is made once into
    `folder` (OpenVINO's bf16 runs its float32 export with a bfloat16 inference precision)."""
    from clip_hand3d.export import export_model, load_runtime

    engines = []
    for runtime, precision in pairs:
        backend = "onnx" if runtime == "onnxruntime" else "openvino"
        int8 = precision == "int8"
        out = folder / f"{backend}-{'int8' if int8 else 'fp32'}"
        if not out.exists():
            export_model(model, processor, out, backend=backend, int8=int8, calibration_spec=CALIBRATION,
                         calibration_samples=CALIBRATION_SAMPLES)  # fmt: skip
        hint = {"precision_hint": precision if precision != "int8" else "fp32"} if runtime == "openvino" else {}
        loaded = load_runtime(out, runtime, device=device, threads=threads, **hint)
        engines.append(Engine(f"{runtime}/{precision}", loaded, _to_numpy, device))
    return engines


def _to_numpy(pixel_values: torch.Tensor) -> np.ndarray:
    return pixel_values.detach().cpu().numpy()


def synthetic_photo() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A PHOTO_SIZE-pixel RGB photo (H, W, 3) uint8 of one synthetic right hand, and its box (x1, y1, x2, y2) px."""
    from clip_hand3d.data.synthetic.render import render_sample

    row = render_sample(PHOTO_INDEX, PHOTO_SEED, PHOTO_SIZE, "test")
    return np.asarray(row["image"].convert("RGB")), tuple(float(value) for value in row["box"])


def interleaved_ms(functions: dict[str, Callable[[], object]], repeats: int, warmup: int, device: str) -> dict:
    """Per name, the wall times (ms) of `repeats` calls, every round calling each function once in an order rotated
    by one each round; `warmup` untimed rounds first. Also "other_processes_cpu" over the timed rounds."""
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    times = {name: [] for name in names}
    with OtherProcessesCPU() as others:
        for index in range(repeats):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_time_ms(functions[name], device))
    return {"times": times, "other_processes_cpu": others.cores}


def measure_runtimes(
    variant: str,
    runtimes: list[str],
    precisions: list[str],
    batch_sizes: list[int],
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    threads: int | None = None,
    compile: bool = False,
    pipeline: bool = True,
) -> dict:
    """Every (runtime, precision) engine of `variant` and MediaPipe Hands, side by side (see the module doc).

    Returns {"variant", "image_size", "network": rows, "pipeline": rows, "skipped": reasons}; a row has "engine",
    "batch_size", "latency_ms_median", "latency_ms_p90", "images_per_second", "other_processes_cpu", and for the
    pipeline the median stage times "stages_ms" (detection, preprocess, network, post_process).
    """
    for name in runtimes:
        check_choice("runtime", name, RUNTIMES)
    for name in precisions:
        check_choice("precision", name, RUNTIME_PRECISIONS)
    for batch_size in batch_sizes:
        check_positive_int("batch_size", batch_size)
    check_positive_int("repeats", repeats)
    check_non_negative_int("warmup", warmup)
    check_device(device)
    config = load_variant_config(variant)
    processor = load_processor(variant, config)
    torch.manual_seed(SEED)
    model = random_weight_model(config, with_text_model=False).eval()
    skipped, pairs = [], []
    for runtime in runtimes:
        for precision in precisions:
            reason = skip_reason(runtime, precision, device)
            if reason:
                skipped.append(reason)
            else:
                pairs.append((runtime, precision))
    mediapipe_reason = mediapipe_skip_reason(device)
    skipped += [mediapipe_reason] if mediapipe_reason else []
    with tempfile.TemporaryDirectory() as folder:
        engines = [torch_engine(model, p, device, compile) for r, p in pairs if r == "torch"]
        exported = [(r, p) for r, p in pairs if r != "torch"]
        engines += exported_engines(model, processor, exported, Path(folder), device, threads)
        detector = None if mediapipe_reason else _mediapipe_detector()
        results = {"variant": variant, "image_size": config.image_size, "network": [], "pipeline": []}
        for batch_size in batch_sizes:
            results["network"] += _network_rows(config, engines, detector, batch_size, repeats, warmup, device)
            if pipeline:
                results["pipeline"] += _pipeline_rows(engines, processor, detector, batch_size, repeats, warmup)
        if detector is not None:
            detector.close()
    results["skipped"] = skipped
    return results


def _mediapipe_detector():
    from clip_hand3d.detection import MediaPipeHandDetector

    return MediaPipeHandDetector(max_num_hands=1)


def _network_rows(config, engines, detector, batch_size, repeats, warmup, device) -> list[dict]:
    pixel_values = random_pixel_values(config, batch_size, torch.Generator().manual_seed(SEED))
    functions = {engine.name: functools.partial(engine, pixel_values) for engine in engines}
    if detector is not None and batch_size == 1:
        photo, _ = synthetic_photo()
        functions[MEDIAPIPE] = functools.partial(detector.detect, photo)
    measured = interleaved_ms(functions, repeats, warmup, device)
    return [
        _row(name, batch_size, times, measured["other_processes_cpu"]) for name, times in measured["times"].items()
    ]


def _pipeline_rows(engines, processor, detector, batch_size, repeats, warmup) -> list[dict]:
    """The whole pipeline of every CPU engine on the synthetic photo (see the module doc)."""
    from clip_hand3d.pipeline import TIMING_NAMES, HandMeshPipeline

    photo, box = synthetic_photo()
    with_detector = detector is not None and batch_size == 1
    boxes = None if with_detector else [box] * batch_size
    stages = {engine.name: {name: [] for name in TIMING_NAMES} for engine in engines if engine.device == "cpu"}
    functions = {}
    for engine in engines:
        if engine.device != "cpu":
            continue
        pipe = HandMeshPipeline(engine, processor, detector=detector if with_detector else None)
        functions[engine.name] = functools.partial(_predict, pipe, photo, boxes, stages[engine.name])
    measured = interleaved_ms(functions, repeats, warmup, "cpu")
    rows = []
    for name, times in measured["times"].items():
        row = _row(name, batch_size, times, measured["other_processes_cpu"])
        row["detector"] = "mediapipe" if with_detector else "boxes given"
        row["stages_ms"] = {stage: float(np.median(values[-repeats:])) for stage, values in stages[name].items()}
        rows.append(row)
    return rows


def _predict(pipe, photo: np.ndarray, boxes, stages: dict[str, list[float]]) -> None:
    output = pipe.predict(photo, boxes=boxes)
    if boxes is None and len(output.hands) != 1:
        raise RuntimeError(f"MediaPipe found {len(output.hands)} hands in the benchmark's photo, expected 1")
    for stage, value in output.timings_ms.items():
        stages[stage].append(value)


def _row(name: str, batch_size: int, times: list[float], others: float) -> dict:
    median = float(np.median(times))
    return {
        "engine": name,
        "batch_size": batch_size,
        "latency_ms_median": median,
        "latency_ms_p90": float(np.percentile(times, 90)),
        "images_per_second": batch_size * 1000.0 / median,
        "other_processes_cpu": others,
    }
