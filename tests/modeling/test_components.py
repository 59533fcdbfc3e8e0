"""Soft-argmax, joint heatmap planes, feature sampling and attention against hand-computed cases."""

import math

import pytest
import torch
from torch.nn import functional

from clip_hand3d.modeling.lixel_regressor import soft_argmax_1d
from clip_hand3d.modeling.mesh_regressor import joint_heatmap_planes, sample_at_joints
from clip_hand3d.modeling.transformer import CPU_FLOAT32_ATTENTION_MAX_TOKENS, attention


def test_soft_argmax_of_peaked_and_uniform_logits():
    peaked = torch.full((1, 1, 8), -1e4)
    peaked[0, 0, 5] = 0.0
    position, probabilities = soft_argmax_1d(peaked)
    assert position.item() == pytest.approx(5.0)
    assert probabilities.sum().item() == pytest.approx(1.0)
    uniform_position, _ = soft_argmax_1d(torch.zeros(1, 1, 8))
    assert uniform_position.item() == pytest.approx(3.5)


def test_heatmap_planes_peak_at_the_joint_with_sigma():
    joints = torch.tensor([[[3.0, 5.0, 7.0]]])
    planes = joint_heatmap_planes(joints, heatmap_size=16, depth_size=16, sigma=2.0)
    assert planes.shape == (1, 3, 16, 16)
    xy, xz, yz = planes[0]
    assert xy[5, 3].item() == pytest.approx(1.0)  # row v, column u
    assert xz[7, 3].item() == pytest.approx(1.0)  # row d, column u
    assert yz[7, 5].item() == pytest.approx(1.0)  # row d, column v
    assert xy[5, 5].item() == pytest.approx(math.exp(-4 / 8))  # two pixels away: exp(-d^2 / (2 sigma^2))


def test_heatmap_planes_rescale_depth_bins():
    joints = torch.tensor([[[0.0, 0.0, 4.0]]])
    planes = joint_heatmap_planes(joints, heatmap_size=16, depth_size=8, sigma=1.0)
    assert planes[0, 1, 8, 0].item() == pytest.approx(1.0)  # d = 4 of 8 bins is row 8 of 16


def test_sample_at_joints_reads_pixel_centres_at_any_resolution():
    image_size, heatmap_size = 32, 8
    feature_map = torch.arange(16.0).view(1, 1, 4, 4)  # 4 x 4 cells of 8 crop pixels each
    # The centre of cell (row 2, column 1) is crop pixel (x, y) = (11.5, 19.5) -> uv = crop * 8 / 32.
    joints = torch.tensor([[[11.5 / 4, 19.5 / 4, 0.0]]])
    sampled = sample_at_joints(feature_map, joints, image_size, heatmap_size)
    assert sampled.shape == (1, 1, 1)
    assert sampled.item() == pytest.approx(feature_map[0, 0, 2, 1].item())


def test_short_sequences_attend_in_float32_under_cpu_bfloat16_autocast():
    generator = torch.Generator().manual_seed(0)
    for length, float32 in ((73, True), (CPU_FLOAT32_ATTENTION_MAX_TOKENS + 1, False)):
        query, key, value = torch.randn(3, 2, 2, length, 16, generator=generator).to(torch.bfloat16)
        mask = torch.ones(2, 1, 1, length, dtype=torch.bool)
        mask[0, ..., length // 2 :] = False  # the first sample attends to the first half of its tokens only
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attended = attention(query, key, value, mask)
        in_float32 = functional.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask)
        assert attended.dtype == torch.bfloat16
        assert torch.equal(attended, in_float32.to(torch.bfloat16)) == float32, length
        torch.testing.assert_close(attended.float(), in_float32, atol=0.02, rtol=0.02)
