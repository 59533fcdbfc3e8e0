"""The benchmark's report: the machine the numbers belong to, and the results as a markdown page of tables."""

import os
import platform
from pathlib import Path

import psutil
import torch

INFERENCE_COLUMNS = [
    "variant",
    "image",
    "batch",
    "precision",
    "model ms",
    "model p90",
    "backbone ms",
    "backbone p90",
    "model / backbone",
    "images/s",
    "peak MiB",
    "others' CPU",
]
TRAINING_COLUMNS = [
    "variant",
    "image",
    "batch",
    "precision",
    "step ms",
    "step p90",
    "images/s",
    "peak MiB",
    "final loss",
    "others' CPU",
]
PARAMETER_COLUMNS = ["variant", "total", "trainable", "backbone", "text tower", "inference model"]


def describe_machine(device: str = "cpu") -> dict:
    """The machine the numbers belong to: CPU model, cores usable by this process, torch, threads, GPU."""
    return {
        "cpu": cpu_model_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def cpu_model_name() -> str:
    """The CPU's "model name" from /proc/cpuinfo (Linux), else what `platform.processor()` says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def results_to_markdown(results: dict) -> str:
    """The results as a markdown page: machine, command, inference, training and parameter tables."""
    lines = ["# clip-hand3d benchmark", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += ["## Machine", "", *_table(["", ""], _machine_rows(results["machine"])), ""]
    if results["inference"]:
        lines += [
            "## Inference",
            "",
            "Latencies in ms (median and 90th percentile over the repeats), the full model and its backbone alone "
            "timed in one interleaved loop; peak memory: above the process's level before one forward; others' CPU: cores kept busy by other "
            "processes during the timed rounds (0 on a quiet machine).",
            "",
            *_table(INFERENCE_COLUMNS, [_inference_row(row) for row in results["inference"]]),
            "",
        ]
    if results["training"]:
        lines += [
            "## Training",
            "",
            "One step: forward over two views per image with text prompts and every loss term, backward, AdamW; "
            "images/s counts images of the batch. Peak memory: above the process's level before the first step.",
            "",
            *_table(TRAINING_COLUMNS, [_training_row(row) for row in results["training"]]),
            "",
        ]
    if results["parameters"]:
        lines += [
            "## Parameters",
            "",
            "In millions. The text tower is frozen and only serves the training loss; inference models leave it out.",
            "",
            *_table(
                PARAMETER_COLUMNS, [_parameter_row(name, counts) for name, counts in results["parameters"].items()]
            ),
            "",
        ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _machine_rows(machine: dict) -> list[list[str]]:
    rows = [
        ["CPU", machine["cpu"]],
        ["cores", str(machine["cores"])],
        ["memory", f"{machine['memory_gib']:.0f} GiB"],
        ["torch", machine["torch"]],
        ["threads", str(machine["threads"])],
        ["python", machine["python"]],
        ["platform", machine["platform"]],
        ["device", machine["device"]],
    ]
    return rows + ([["GPU", machine["gpu"]]] if machine["gpu"] else [])


def _inference_row(row: dict) -> list[str]:
    return [
        row["variant"],
        str(row["image_size"]),
        str(row["batch_size"]),
        row["precision"],
        f"{row['latency_ms_median']:.1f}",
        f"{row['latency_ms_p90']:.1f}",
        f"{row['backbone_latency_ms_median']:.1f}",
        f"{row['backbone_latency_ms_p90']:.1f}",
        f"{row['full_to_backbone_ratio']:.2f}",
        f"{row['images_per_second']:.1f}",
        f"{row['peak_memory_mib']:.0f}",
        f"{row['other_processes_cpu']:.2f}",
    ]


def _training_row(row: dict) -> list[str]:
    return [
        row["variant"],
        str(row["image_size"]),
        str(row["batch_size"]),
        row["precision"],
        f"{row['step_ms_median']:.0f}",
        f"{row['step_ms_p90']:.0f}",
        f"{row['images_per_second']:.1f}",
        f"{row['peak_memory_mib']:.0f}",
        f"{row['final_loss']:.3f}",
        f"{row['other_processes_cpu']:.2f}",
    ]


def _parameter_row(name: str, counts: dict[str, int]) -> list[str]:
    millions = [counts["total"], counts["trainable"], counts["backbone"], counts["text_model"]]
    millions.append(counts["total"] - counts["text_model"])
    return [name] + [f"{count / 1e6:.2f}" for count in millions]


RUNTIME_COLUMNS = ["variant", "batch", "engine", "ms", "p90", "images/s", "speed-up vs torch/fp32", "vs MediaPipe",
                   "others' CPU"]  # fmt: skip
PIPELINE_COLUMNS = ["variant", "batch", "engine", "boxes", "total ms", "detection", "crops", "network",
                    "post-process", "minus MediaPipe", "others' CPU"]  # fmt: skip
BASELINE_ENGINE, MEDIAPIPE_ENGINE = "torch/fp32", "mediapipe/fp32"


def runtimes_to_markdown(results: dict) -> str:
    """The side-by-side runtime results (`runtimes.measure_runtimes` per variant, under "runtimes") as markdown:
    the network alone and the whole pipeline, with ratios to torch/fp32 and to MediaPipe Hands of the same run."""
    lines = ["# clip-hand3d runtimes side by side", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += ["## Machine", "", *_table(["", ""], _machine_rows(results["machine"])), ""]
    network = [row for variant in results["runtimes"] for row in _runtime_rows(variant)]
    lines += [
        "## Network alone",
        "",
        "Median and 90th-percentile ms over the repeats, every engine timed in one interleaved loop on the same "
        "crops; speed-up: torch/fp32's median over the engine's; vs MediaPipe: the engine's median over MediaPipe "
        "Hands' (palm detection and landmarks on one photo, no mesh) in the same loop, batch 1 only.",
        "",
        *_table(RUNTIME_COLUMNS, network),
        "",
    ]
    pipeline = [row for variant in results["runtimes"] for row in _pipeline_rows(variant)]
    if pipeline:
        lines += [
            "## Whole pipeline",
            "",
            "`HandMeshPipeline.predict` on one photo, median ms per stage; batch 1 with MediaPipe's detector, larger "
            "batches with the hand's box given that many times (no detection). Minus MediaPipe: the pipeline's "
            "median minus MediaPipe Hands' alone, from the network table's loop.",
            "",
            *_table(PIPELINE_COLUMNS, pipeline),
            "",
        ]
    skipped = sorted({reason for variant in results["runtimes"] for reason in variant["skipped"]})
    if skipped:
        lines += ["Not measured:", "", *[f"- {reason}" for reason in skipped], ""]
    return "\n".join(lines)


def _medians(variant: dict, batch_size: int) -> dict[str, float]:
    rows = [row for row in variant["network"] if row["batch_size"] == batch_size]
    return {row["engine"]: row["latency_ms_median"] for row in rows}


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "" if numerator is None or denominator is None else f"{numerator / denominator:.2f}x"


def _runtime_rows(variant: dict) -> list[list[str]]:
    rows = []
    for row in variant["network"]:
        medians = _medians(variant, row["batch_size"])
        mediapipe = _medians(variant, 1).get(MEDIAPIPE_ENGINE) if row["batch_size"] == 1 else None
        rows.append([
            variant["variant"],
            str(row["batch_size"]),
            row["engine"],
            f"{row['latency_ms_median']:.1f}",
            f"{row['latency_ms_p90']:.1f}",
            f"{row['images_per_second']:.1f}",
            _ratio(medians.get(BASELINE_ENGINE), row["latency_ms_median"]),
            "" if row["engine"] == MEDIAPIPE_ENGINE else _ratio(row["latency_ms_median"], mediapipe),
            f"{row['other_processes_cpu']:.2f}",
        ])  # fmt: skip
    return rows


def _pipeline_rows(variant: dict) -> list[list[str]]:
    mediapipe = _medians(variant, 1).get(MEDIAPIPE_ENGINE)
    rows = []
    for row in variant["pipeline"]:
        stages = row["stages_ms"]
        over = row["latency_ms_median"] - mediapipe if mediapipe is not None and row["batch_size"] == 1 else None
        rows.append([
            variant["variant"],
            str(row["batch_size"]),
            row["engine"],
            row["detector"],
            f"{row['latency_ms_median']:.1f}",
            *(f"{stages[name]:.1f}" for name in ("detection", "preprocess", "network", "post_process")),
            "" if over is None else f"{over:+.1f} ms",
            f"{row['other_processes_cpu']:.2f}",
        ])  # fmt: skip
    return rows
