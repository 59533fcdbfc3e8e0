"""The benchmark's measurements of the tiny variant: inference and training numbers, parameter counts, settings."""

import pytest
import torch

from clip_hand3d.benchmark.measure import (
    count_parameters,
    load_variant_config,
    measure_inference,
    measure_training,
    random_weight_model,
)

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
    model = random_weight_model(tiny_config, with_text_model=False)
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
    model = random_weight_model(tiny_config, with_text_model=True)
    counts = training["parameters"]
    assert counts == count_parameters(model)
    assert counts["total"] == hand_count(model)
    assert counts["text_model"] == TINY_TEXT_PARAMETERS
    assert counts["backbone"] == TINY_BACKBONE_PARAMETERS
    assert counts["trainable"] == counts["total"] - TINY_TEXT_PARAMETERS


def test_random_weight_model_leaves_the_config_unchanged(tiny_config):
    assert tiny_config.with_text_model is True
    random_weight_model(tiny_config, with_text_model=False)
    assert tiny_config.with_text_model is True


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
