import json
import subprocess
import sys
import time

import pytest
import torch

from clip_hand3d import benchmark
from clip_hand3d.benchmark import (
    OtherProcessesCPU,
    PeakRSS,
    build_model,
    count_parameters,
    load_variant_config,
    measure_inference,
    measure_training,
    results_to_markdown,
)
from clip_hand3d.cli import build_parser

TINY = "clip-hand3d-tiny"
BATCH_SIZE = 2
# The tiny variant's ResNet (basic blocks, stem 32, widths 32-64-128-256, one block per stage), counted by hand:
# stem conv 3*32*7*7 + BN 2*32; stage 1 (no shortcut) 2 * (32*32*9 + 2*32); each later stage c -> 2c: 1x1
# shortcut c*2c + BN, conv c*2c*9 + BN, conv 2c*2c*9 + BN.
TINY_BACKBONE_PARAMETERS = (
    (3 * 32 * 49 + 64)
    + 2 * (32 * 32 * 9 + 64)
    + sum(c * 2 * c + 4 * c + c * 2 * c * 9 + 4 * c + 2 * c * 2 * c * 9 + 4 * c for c in (32, 64, 128))
)
# The tiny text tower (CLIP text, vocabulary 29, width 32, one layer, MLP 64, 77 positions), counted by hand:
# embeddings 29*32 + 77*32; layer: 2 LayerNorms, q/k/v/out 4 * (32*32 + 32), fc1 32*64 + 64, fc2 64*32 + 32;
# final LayerNorm.
TINY_TEXT_PARAMETERS = 29 * 32 + 77 * 32 + 2 * 64 + 4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 64


@pytest.fixture(scope="module")
def tiny_config():
    return load_variant_config(TINY)


@pytest.fixture(scope="module")
def inference(tiny_config):
    # Three rounds: the median ignores one slow round (the first, or one slowed down by other processes).
    return measure_inference(tiny_config, batch_size=BATCH_SIZE, repeats=3, warmup=0)


@pytest.fixture(scope="module")
def training(tiny_config):
    return measure_training(tiny_config, batch_size=BATCH_SIZE, steps=1, warmup=1)


def hand_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_inference_latencies_and_throughput(inference):
    assert inference["batch_size"] == BATCH_SIZE and inference["image_size"] == 128
    assert 0 < inference["latency_ms_median"] <= inference["latency_ms_p90"]
    assert 0 < inference["backbone_latency_ms_median"] <= inference["backbone_latency_ms_p90"]
    assert inference["images_per_second"] == pytest.approx(BATCH_SIZE * 1000 / inference["latency_ms_median"])
    ratio = inference["latency_ms_median"] / inference["backbone_latency_ms_median"]
    assert inference["full_to_backbone_ratio"] == pytest.approx(ratio)
    # The full model runs the backbone and a head on top of it.
    assert inference["full_to_backbone_ratio"] > 1
    assert inference["peak_memory_mib"] > 0
    assert inference["threads"] == torch.get_num_threads()


def test_inference_parameters_are_those_of_the_model_without_text_tower(tiny_config, inference):
    model = build_model(tiny_config, with_text_model=False)
    assert model.text_model is None
    assert inference["parameters"] == {
        "total": hand_count(model),
        "trainable": hand_count(model),
        "backbone": TINY_BACKBONE_PARAMETERS,
        "text_model": 0,
    }


def test_training_throughput_memory_and_loss(training):
    assert training["batch_size"] == BATCH_SIZE and training["steps"] == 1
    assert 0 < training["step_ms_median"] <= training["step_ms_p90"]
    assert training["images_per_second"] == pytest.approx(BATCH_SIZE * 1000 / training["step_ms_median"])
    # AdamW's two moments alone take 8 bytes per trainable parameter.
    assert training["peak_memory_mib"] > 8 * training["parameters"]["trainable"] / 2**20
    assert torch.isfinite(torch.tensor(training["final_loss"]))


def test_training_parameters_count_the_frozen_text_tower(tiny_config, training):
    model = build_model(tiny_config, with_text_model=True)
    counts = training["parameters"]
    assert counts == count_parameters(model)
    assert counts["total"] == hand_count(model)
    assert counts["text_model"] == TINY_TEXT_PARAMETERS
    assert counts["backbone"] == TINY_BACKBONE_PARAMETERS
    assert counts["trainable"] == counts["total"] - TINY_TEXT_PARAMETERS


def test_build_model_leaves_the_config_unchanged(tiny_config):
    assert tiny_config.with_text_model is True
    build_model(tiny_config, with_text_model=False)
    assert tiny_config.with_text_model is True


def test_peak_rss_sees_a_buffer_held_inside():
    with PeakRSS() as memory:
        buffer = torch.ones(64 * 2**20, dtype=torch.uint8)
        time.sleep(0.2)  # many sampling intervals
        del buffer
    assert memory.peak_bytes >= 60 * 2**20


def test_other_processes_cpu_sees_a_busy_child_process():
    busy_loop = "import time\nend = time.time() + 0.5\nwhile time.time() < end:\n    pass"
    with OtherProcessesCPU() as others:
        subprocess.run([sys.executable, "-c", busy_loop], check=True)
    # About one core on a quiet machine; more when other processes run too.
    assert others.cores >= 0.5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"repeats": 0}, "repeats must be a positive integer, got 0"),
        ({"warmup": -1}, "warmup must be a non-negative integer, got -1"),
        ({"device": "tpu"}, "device must be 'cpu' or 'cuda', got 'tpu'"),
        ({"precision": "fp16"}, r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"),
    ],
)
def test_measure_inference_rejects_bad_settings(tiny_config, arguments, message):
    settings = {"batch_size": 1, "repeats": 1, "warmup": 0, **arguments}
    with pytest.raises(ValueError, match=message):
        measure_inference(tiny_config, **settings)


def test_bf16_measures_the_channels_last_autocast_model(tiny_config, training):
    inference = measure_inference(tiny_config, batch_size=BATCH_SIZE, repeats=1, warmup=0, precision="bf16")
    assert inference["precision"] == "bf16" and inference["latency_ms_median"] > 0
    bf16_training = measure_training(tiny_config, batch_size=BATCH_SIZE, steps=1, warmup=1, precision="bf16")
    assert bf16_training["precision"] == "bf16" and training["precision"] == "fp32"
    # Same seed, same random model and inputs: the losses (computed in float32) differ by bfloat16's rounding only.
    assert bf16_training["final_loss"] == pytest.approx(training["final_loss"], rel=0.05)


def test_measure_training_needs_a_warmup_step(tiny_config):
    with pytest.raises(ValueError, match="warmup must be a positive integer, got 0"):
        measure_training(tiny_config, batch_size=2, steps=1, warmup=0)


def test_cli_writes_json_and_markdown(tmp_path, capsys, monkeypatch, inference, training):
    # The measurements themselves are tested above: here they return those results and record their settings.
    calls = []

    def fake_inference(config, batch_size, repeats, warmup, device, precision):
        calls.append(("inference", config.image_size, batch_size, repeats, warmup, device, precision))
        return inference

    def fake_training(config, batch_size, steps, device, precision):
        calls.append(("training", config.image_size, batch_size, steps, device, precision))
        return training

    monkeypatch.setattr(benchmark, "measure_inference", fake_inference)
    monkeypatch.setattr(benchmark, "measure_training", fake_training)
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


def test_markdown_tables_of_known_results():
    machine = {
        "cpu": "Test CPU",
        "cores": 2,
        "memory_gib": 16.0,
        "torch": "2.0",
        "threads": 2,
        "python": "3.11.0",
        "platform": "Linux",
        "device": "cpu",
        "gpu": None,
    }
    inference_row = {
        "variant": TINY,
        "image_size": 128,
        "batch_size": 16,
        "precision": "fp32",
        "latency_ms_median": 250.0,
        "latency_ms_p90": 262.54,
        "backbone_latency_ms_median": 200.0,
        "backbone_latency_ms_p90": 210.0,
        "full_to_backbone_ratio": 1.25,
        "images_per_second": 64.0,
        "peak_memory_mib": 99.6,
        "other_processes_cpu": 0.5,
    }
    training_row = {
        "variant": TINY,
        "image_size": 128,
        "batch_size": 32,
        "precision": "bf16",
        "step_ms_median": 1999.6,
        "step_ms_p90": 2100.0,
        "images_per_second": 16.003,
        "peak_memory_mib": 512.0,
        "final_loss": 12.3456,
        "other_processes_cpu": 1.234,
    }
    parameters = {"total": 3_500_000, "trainable": 2_000_000, "backbone": 1_250_000, "text_model": 1_500_000}
    results = {
        "command": "clip-hand3d benchmark --variants clip-hand3d-tiny",
        "machine": machine,
        "inference": [inference_row],
        "training": [training_row],
        "parameters": {TINY: parameters},
    }
    lines = results_to_markdown(results).splitlines()
    assert lines[0] == "# clip-hand3d benchmark"
    assert "clip-hand3d benchmark --variants clip-hand3d-tiny" in lines
    assert "| CPU | Test CPU |" in lines and "| memory | 16 GiB |" in lines and "| threads | 2 |" in lines
    assert not any(line.startswith("| GPU") for line in lines)
    assert f"| {TINY} | 128 | 16 | fp32 | 250.0 | 262.5 | 200.0 | 210.0 | 1.25 | 64.0 | 100 | 0.50 |" in lines
    assert f"| {TINY} | 128 | 32 | bf16 | 2000 | 2100 | 16.0 | 512 | 12.346 | 1.23 |" in lines
    # Millions: total, trainable, backbone, text tower, inference model (total without the text tower).
    assert f"| {TINY} | 3.50 | 2.00 | 1.25 | 1.50 | 2.00 |" in lines
    assert results_to_markdown({**results, "training": []}).count("## Training") == 0


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
