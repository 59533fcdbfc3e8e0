"""The pose in words and the pose-text scores of a crop."""

import numpy as np
import pytest
import torch

from clip_hand3d import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.pose_text import describe_pose, pose_text_scores, text_tower
from clip_hand3d.variants import load_processor, resolve_variant


def test_describe_pose_orders_the_joints_along_each_axis():
    joints = np.zeros((21, 3))
    joints[4] = (0.05, -0.02, 0.01)  # thumb tip: right of the wrist, above it, farther
    joints[8] = (-0.03, -0.08, -0.01)  # index tip: left, higher still, nearer
    x, y, z = describe_pose(joints, num_joints=3)
    assert x == "From left to right, the joints are index fingertip, wrist, and thumb fingertip."
    assert y == "From top to bottom, the joints are index fingertip, thumb fingertip, and wrist."
    assert z == "From near to far, the joints are index fingertip, wrist, and thumb fingertip."
    assert describe_pose(joints, num_joints=1)[0].count(",") == 1
    with pytest.raises(ValueError, match="num_joints must be in 1..21, got 0"):
        describe_pose(joints, num_joints=0)


@pytest.fixture(scope="module")
def tiny():
    config = CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-tiny"))
    torch.manual_seed(0)
    return CLIPHand3DModel(config).eval(), load_processor("clip-hand3d-tiny", config)


def test_scores_are_the_per_axis_cosines_of_the_model_embeddings(tiny):
    model, processor = tiny
    pixel_values = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    sentences = describe_pose(np.random.default_rng(0).normal(size=(21, 3)))
    scores = pose_text_scores(model, processor, pixel_values, sentences)
    assert scores.shape == (3,) and (np.abs(scores) <= 1 + 1e-6).all()
    tokens = processor.tokenize_prompts([sentences])
    output = model(
        pixel_values=pixel_values,
        text_input_ids=torch.from_numpy(tokens["text_input_ids"]),
        text_attention_mask=torch.from_numpy(tokens["text_attention_mask"]),
    )
    pose, text = output.pose_embeds[0].detach().numpy(), output.text_embeds[0].detach().numpy()
    cosines = (pose * text).sum(1) / np.linalg.norm(pose, axis=1) / np.linalg.norm(text, axis=1)
    np.testing.assert_allclose(scores, cosines, atol=1e-5)
    # Another sentence scores differently.
    other = ("From left to right, the joints are wrist.", sentences[1], sentences[2])
    assert not np.allclose(pose_text_scores(model, processor, pixel_values, other)[0], scores[0])


def test_text_tower_in_words_and_models_without_one(tiny):
    model, processor = tiny
    assert text_tower(model.config).startswith("a small text model with random frozen weights")
    pretrained = CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-r50"))
    assert "pretrained CLIP text model openai/clip-vit-base-patch32" in text_tower(pretrained)
    without = CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-tiny"), use_clip_loss=False)
    assert text_tower(without) is None
    pixel_values = torch.zeros(1, 3, model.config.image_size, model.config.image_size)
    with pytest.raises(ValueError, match="three strings"):
        pose_text_scores(model, processor, pixel_values, ("only one",))
    with pytest.raises(ValueError, match="one crop"):
        pose_text_scores(model, processor, pixel_values.repeat(2, 1, 1, 1), ("a", "b", "c"))
