"""Runtimes side by side: every engine and MediaPipe in one loop, skipped combinations with their reason, the
report's ratios; the GPU path skipped with its reason on a CPU-only machine."""

import pytest
import torch

from clip_hand3d.benchmark.report import runtimes_to_markdown
from clip_hand3d.benchmark.runtimes import interleaved_ms, measure_runtimes, skip_reason

TINY = "clip-hand3d-tiny"


@pytest.fixture(scope="module")
def measured():
    pytest.importorskip("onnxruntime")
    return measure_runtimes(TINY, ["torch", "onnxruntime"], ["fp32", "bf16"], [1], repeats=1, warmup=0)


def test_every_engine_is_measured_and_the_rest_skipped_with_a_reason(measured):
    engines = {row["engine"] for row in measured["network"]}
    assert {"torch/fp32", "torch/bf16", "onnxruntime/fp32"} <= engines
    assert any("onnxruntime bf16" in reason for reason in measured["skipped"])
    for row in measured["network"]:
        assert row["latency_ms_median"] > 0 and row["batch_size"] == 1


def test_pipeline_rows_time_every_stage(measured):
    rows = {row["engine"]: row for row in measured["pipeline"]}
    assert set(rows) == {"torch/fp32", "torch/bf16", "onnxruntime/fp32"}
    for row in rows.values():
        assert set(row["stages_ms"]) == {"detection", "preprocess", "network", "post_process", "total"}
        assert row["stages_ms"]["network"] > 0


def test_mediapipe_runs_in_the_same_loop_when_installed(measured):
    pytest.importorskip("mediapipe")
    assert "mediapipe/fp32" in {row["engine"] for row in measured["network"]}
    assert all(row["detector"] == "mediapipe" for row in measured["pipeline"])


def test_markdown_gives_ratios_of_the_same_run():
    def row(engine, median):
        return {"engine": engine, "batch_size": 1, "latency_ms_median": median, "latency_ms_p90": median,
                "images_per_second": 1000 / median, "other_processes_cpu": 0.0}  # fmt: skip

    network = [row("torch/fp32", 40.0), row("onnxruntime/int8", 10.0), row("mediapipe/fp32", 20.0)]
    pipeline = [{**row("onnxruntime/int8", 35.0), "detector": "mediapipe",
                 "stages_ms": {"detection": 20.0, "preprocess": 2.0, "network": 10.0, "post_process": 3.0}}]  # fmt: skip
    variant = {"variant": TINY, "network": network, "pipeline": pipeline, "skipped": ["x: not installed"]}
    machine = {"cpu": "test", "cores": 2, "memory_gib": 1, "torch": "t", "threads": 2, "python": "3",
               "platform": "p", "device": "cpu", "gpu": None}  # fmt: skip
    markdown = runtimes_to_markdown({"machine": machine, "runtimes": [variant]})
    assert "| clip-hand3d-tiny | 1 | onnxruntime/int8 | 10.0 | 10.0 | 100.0 | 4.00x | 0.50x | 0.00 |" in markdown
    assert "+15.0 ms" in markdown
    assert "- x: not installed" in markdown


def test_interleaved_loop_rotates_the_order():
    calls = []
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    measured = interleaved_ms(functions, repeats=3, warmup=0, device="cpu")
    assert calls == list("abcbcacab")
    assert all(len(times) == 3 for times in measured["times"].values())


def test_skip_reasons_name_what_is_missing():
    assert "no quantised PyTorch path" in skip_reason("torch", "int8", "cpu")
    assert "Intel GPUs" in skip_reason("openvino", "fp32", "cuda")
    assert skip_reason("torch", "bf16", "cuda") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the refusal is for CPU-only machines")
def test_cuda_is_refused_clearly_without_a_gpu():
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for but torch.cuda.is_available\(\) is False"):
        measure_runtimes(TINY, ["torch"], ["bf16"], [1], repeats=1, warmup=0, device="cuda")


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the CUDA path needs a GPU; CI and this CPU machine have none"
)
def test_cuda_path_runs_torch_bf16_compiled():
    measured = measure_runtimes(TINY, ["torch"], ["bf16"], [1], repeats=2, warmup=1, device="cuda", compile=True)
    assert measured["network"][0]["engine"] == "torch/bf16+compile"
