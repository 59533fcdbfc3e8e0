"""`--mixed_precision auto`: bfloat16 only where the device has it natively."""

import pytest
import torch

from clip_hand3d.training import precision
from clip_hand3d.training.precision import has_native_bf16, resolve_mixed_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(True, False, "bf16"), (False, True, "bf16"), (False, False, "no")]
)
def test_auto_is_bf16_on_a_cpu_with_avx512_bf16_or_amx_and_float32_elsewhere(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(precision.torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(precision.torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert has_native_bf16(CPU) == (expected == "bf16")
    assert resolve_mixed_precision("auto", CPU) == expected


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_follows_the_gpus_bf16_support(monkeypatch, supported):
    monkeypatch.setattr(precision.torch.cuda, "is_bf16_supported", lambda: supported)
    assert resolve_mixed_precision("auto", torch.device("cuda")) == ("bf16" if supported else "no")


def test_auto_is_float32_on_other_devices():
    assert resolve_mixed_precision("auto", torch.device("meta")) == "no"


@pytest.mark.parametrize("requested", [None, "no", "fp16", "bf16"])
def test_an_explicit_precision_is_kept_whatever_the_device(monkeypatch, requested):
    monkeypatch.setattr(precision.torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(precision.torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_mixed_precision(requested, CPU) == requested


def test_an_unknown_precision_is_named():
    with pytest.raises(ValueError, match="--mixed_precision must be one of no, fp16, bf16, auto, got 'fp8'"):
        resolve_mixed_precision("fp8", CPU)


@pytest.mark.parametrize(
    ("use_cpu", "cuda", "expected"),
    [("1", True, "cpu"), ("true", True, "cpu"), ("", True, "cuda"), ("", False, "cpu")],
)
def test_the_launch_device_follows_accelerates_cpu_flag_and_cuda(monkeypatch, use_cpu, cuda, expected):
    monkeypatch.setenv("ACCELERATE_USE_CPU", use_cpu)
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: cuda)
    assert precision.launch_device().type == expected
