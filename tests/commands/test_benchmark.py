"""`clip-hand3d benchmark`: its arguments, and the JSON and markdown it writes (the measurements are faked here;
tests/benchmark tests them)."""

import json
import re

import pytest
import torch

from clip_hand3d.benchmark import measure
from clip_hand3d.benchmark.report import results_to_markdown
from clip_hand3d.commands import build_parser
from tests.benchmark.test_measure import TINY_TEXT_PARAMETERS

TINY = "clip-hand3d-tiny"
# What measure_inference and measure_training return, with made-up numbers.
INFERENCE = {
    "batch_size": 2,
    "image_size": 128,
    "precision": "bf16",
    "latency_ms_median": 25.0,
    "latency_ms_p90": 26.0,
    "backbone_latency_ms_median": 20.0,
    "backbone_latency_ms_p90": 21.0,
    "full_to_backbone_ratio": 1.25,
    "images_per_second": 80.0,
    "peak_memory_mib": 12.0,
    "other_processes_cpu": 0.1,
}
TRAINING = {
    "batch_size": 32,
    "image_size": 128,
    "precision": "bf16",
    "step_ms_median": 500.0,
    "step_ms_p90": 510.0,
    "images_per_second": 64.0,
    "peak_memory_mib": 300.0,
    "final_loss": 3.5,
    "other_processes_cpu": 0.2,
}


def test_cli_writes_json_and_markdown(tmp_path, capsys, monkeypatch):
    # The measurements return made-up results and record their settings.
    inference, training = INFERENCE, TRAINING
    calls = []

    def fake_inference(config, batch_size, repeats, warmup, device, precision):
        calls.append(("inference", config.image_size, batch_size, repeats, warmup, device, precision))
        return inference

    def fake_training(config, batch_size, steps, device, precision):
        calls.append(("training", config.image_size, batch_size, steps, device, precision))
        return training

    monkeypatch.setattr(measure, "measure_inference", fake_inference)
    monkeypatch.setattr(measure, "measure_training", fake_training)
    json_path, markdown_path = tmp_path / "out" / "results.json", tmp_path / "results.md"
    threads = torch.get_num_threads()
    args = build_parser().parse_args(
        ["benchmark", "--variants", TINY, "--batch-sizes", "1", "2", "--repeats", "4", "--warmup", "0"]
        + ["--training", f"{TINY}:32", "--training-steps", "3", "--threads", str(threads)]
        + ["--precision", "bf16", "--json", str(json_path), "--markdown", str(markdown_path)]
    )
    args.func(args)

    assert calls == [
        ("inference", 128, 1, 4, 0, "cpu", "bf16"),
        ("inference", 128, 2, 4, 0, "cpu", "bf16"),
        ("training", 128, 32, 3, "cpu", "bf16"),
    ]
    results = json.loads(json_path.read_text())
    assert results["inference"] == [{"variant": TINY, **inference}, {"variant": TINY, **inference}]
    assert results["training"] == [{"variant": TINY, **training}]
    assert results["parameters"][TINY]["text_model"] == TINY_TEXT_PARAMETERS
    assert results["machine"]["threads"] == threads and results["machine"]["torch"] == torch.__version__
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu"]
    assert results["command"] == (
        f"clip-hand3d benchmark --variants {TINY} --batch-sizes 1 2 --repeats 4 --warmup 0 --training {TINY}:32 "
        f"--training-steps 3 --threads {threads} --device cpu --precision bf16 --json {json_path} --markdown {markdown_path}"
    )

    markdown = markdown_path.read_text()
    assert markdown == results_to_markdown(results)
    assert markdown.rstrip("\n") == capsys.readouterr().out.rstrip("\n")
    assert f"| CPU | {results['machine']['cpu']} |" in markdown
    assert "## Inference" in markdown and "## Training" in markdown and "## Parameters" in markdown


def test_cli_bare_training_flag_trains_every_variant():
    args = build_parser().parse_args(["benchmark", "--variants", TINY, "--training"])
    assert args.training == []
    args = build_parser().parse_args(["benchmark", "--training", TINY, f"{TINY}:8"])
    assert args.training == [(TINY, 16), (TINY, 8)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--training", f"{TINY}:zero"], "expected VARIANT or VARIANT:BATCH with a positive batch"),
        (["--batch-sizes", "0"], "expected a positive integer, got '0'"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_cli_rejects_bad_arguments(capsys, arguments, message):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", *arguments])
    assert message in capsys.readouterr().err


def test_cli_names_the_known_variants_for_an_unknown_one(tmp_path):
    args = build_parser().parse_args(["benchmark", "--variants", "clip-hand3d-huge", "--json", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match=r"unknown variant 'clip-hand3d-huge'.*clip-hand3d-tiny"):
        args.func(args)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cli_refuses_cuda_without_a_gpu():
    args = build_parser().parse_args(["benchmark", "--variants", TINY, "--device", "cuda"])
    with pytest.raises(SystemExit, match="torch.cuda.is_available"):
        args.func(args)


def test_cli_runtime_comparison_writes_its_tables(tmp_path, monkeypatch, capsys):
    from clip_hand3d.commands import benchmark as command

    calls = []

    def fake_measure_runtimes(variant, runtimes, precisions, batch_sizes, repeats, warmup, device, threads, **options):
        calls.append((variant, runtimes, precisions, batch_sizes, repeats, warmup, device, threads, options))
        row = {"engine": "onnxruntime/int8", "batch_size": 1, "latency_ms_median": 5.0, "latency_ms_p90": 6.0,
               "images_per_second": 200.0, "other_processes_cpu": 0.0}  # fmt: skip
        return {"variant": variant, "image_size": 128, "network": [row], "pipeline": [], "skipped": []}

    monkeypatch.setattr(command, "measure_runtimes", fake_measure_runtimes)
    markdown_path = tmp_path / "runtimes.md"
    args = build_parser().parse_args(
        ["benchmark", "--variants", TINY, "--runtime", "torch", "onnxruntime", "--precision", "fp32", "int8"]
        + ["--batch-sizes", "1", "--repeats", "2", "--warmup", "0", "--threads", "1", "--network-only"]
        + ["--markdown", str(markdown_path)]
    )
    args.func(args)
    assert calls == [
        (TINY, ["torch", "onnxruntime"], ["fp32", "int8"], [1], 2, 0, "cpu", 1, {"compile": False, "pipeline": False})
    ]
    markdown = markdown_path.read_text()
    assert "| clip-hand3d-tiny | 1 | onnxruntime/int8 | 5.0 | 6.0 | 200.0 |" in markdown
    assert "--runtime torch onnxruntime --network-only" in markdown
    assert "onnxruntime/int8" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--precision", "int8"], "without --runtime, --precision takes one of ('fp32', 'bf16')"),
        (["--precision", "fp32", "bf16"], "without --runtime, --precision takes one of"),
        (["--runtime", "torch", "--training"], "--training measures PyTorch training steps"),
    ],
)
def test_cli_rejects_precisions_the_measurement_cannot_take(arguments, message):
    args = build_parser().parse_args(["benchmark", "--variants", TINY, *arguments])
    with pytest.raises(SystemExit, match=re.escape(message)):
        args.func(args)
