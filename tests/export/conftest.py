"""Shared fixtures of the export tests: the tiny variant with random weights, saved with its processor, and its
exports (each made once per module that uses it)."""

import pytest
import torch

from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.variants import load_processor, resolve_variant


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny variant with random weights, saved with its processor (what train.py writes)."""
    folder = tmp_path_factory.mktemp("tiny")
    config = CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-tiny"))
    torch.manual_seed(0)
    CLIPHand3DModel(config).save_pretrained(folder)
    load_processor("clip-hand3d-tiny", config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_torch(tiny_dir) -> CLIPHand3DModel:
    return CLIPHand3DModel.from_pretrained(str(tiny_dir), with_text_model=False).eval()


@pytest.fixture(scope="session")
def crops(tiny_torch) -> torch.Tensor:
    """Three normalised-looking crops (3, 3, S, S)."""
    size = tiny_torch.config.image_size
    return torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
