"""Shared fixtures: the tiny variant's config and model, built offline with random weights, and the model saved
with its processor."""

import pytest
import torch

from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.variants import load_processor, resolve_variant


@pytest.fixture(scope="session")
def tiny_config() -> CLIPHand3DConfig:
    return CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-tiny"))


@pytest.fixture()
def tiny_model(tiny_config) -> CLIPHand3DModel:
    torch.manual_seed(0)
    return CLIPHand3DModel(tiny_config)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_config):
    """The tiny variant with random weights (seed 0), saved with its processor (what train.py writes); read only."""
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    CLIPHand3DModel(tiny_config).save_pretrained(folder)
    load_processor("clip-hand3d-tiny", tiny_config).save_pretrained(folder)
    return folder


def random_batch(config: CLIPHand3DConfig, batch_size: int = 2, seed: int = 0, text_length: int = 24) -> dict:
    """Keyword arguments of the model's forward: inputs and `labels` of the right shapes and ranges for `config`."""
    generator = torch.Generator().manual_seed(seed)
    size, heatmap = config.image_size, config.heatmap_size
    input_ids = torch.randint(3, config.text_config.vocab_size, (batch_size, 3, text_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[:, :, text_length // 2 :] = 0
    return {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "text_input_ids": input_ids,
        "text_attention_mask": attention_mask,
        "labels": {
            "joints_uvd": torch.rand(batch_size, 21, 3, generator=generator) * heatmap,
            "vertices_uvd": torch.rand(batch_size, 778, 3, generator=generator) * heatmap,
            "vertices_valid": torch.ones(batch_size, dtype=torch.bool),
        },
    }
