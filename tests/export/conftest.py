"""Shared fixtures of the export tests: the PyTorch model of the tiny variant saved by `tiny_dir` (tests/conftest.py)
and its exports (each made once per module that uses it)."""

import pytest
import torch

from clip_hand3d.modeling import CLIPHand3DModel


@pytest.fixture(scope="session")
def tiny_torch(tiny_dir) -> CLIPHand3DModel:
    return CLIPHand3DModel.from_pretrained(str(tiny_dir), with_text_model=False).eval()


@pytest.fixture(scope="session")
def crops(tiny_torch) -> torch.Tensor:
    """Three normalised-looking crops (3, 3, S, S)."""
    size = tiny_torch.config.image_size
    return torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
