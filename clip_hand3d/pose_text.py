"""The pose in words: the paper's three sentences of a predicted hand, and how well any sentences match an image.

    sentences = describe_pose(hand["joints_cam"], num_joints=5)      # ("From left to right, ...", ..., ...)
    scores = pose_text_scores(model, processor, pixel_values, sentences)   # (3,) cosine similarities

The scores are those the contrastive loss trains: per axis (x, y, z) the cosine similarity of the crop's pose
embedding and the sentence's text embedding (`PoseTextMatcher`), in [-1, 1].
"""

import numpy as np
import torch

from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.modeling.hand_joints import JOINT_NAMES
from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.prompts import build_prompts

# The order in which joints join the description: the wrist, the five fingertips, the five MCPs, then the rest.
DESCRIBED_JOINTS = (0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 2, 6, 10, 14, 18, 3, 7, 11, 15, 19)


def describe_pose(joints_cam: np.ndarray, num_joints: int = 5) -> tuple[str, str, str]:
    """The three sentences (left to right, top to bottom, near to far) of a hand's joints in the image's camera
    frame (21, 3), about `num_joints` joints spread over the hand: the wrist first, then fingertips and knuckles."""
    if not 1 <= num_joints <= len(JOINT_NAMES):
        raise ValueError(f"num_joints must be in 1..{len(JOINT_NAMES)}, got {num_joints!r}")
    return build_prompts(joints_cam, joint_ids=list(DESCRIBED_JOINTS[:num_joints]))


def text_tower(config: CLIPHand3DConfig) -> str | None:
    """What the checkpoint's text side is, in words for a user; None when it has no text tower to score with."""
    if not (config.use_clip_loss and config.with_text_model):
        return None
    if config.use_pretrained_text_model:
        return f"the pretrained CLIP text model {config.text_model_name_or_path} (frozen)"
    return (
        f"a small text model with random frozen weights ({config.text_config.num_hidden_layers} layer, "
        f"{config.text_config.hidden_size} wide, not pretrained CLIP); the per-axis transformers learned against it"
    )


def pose_text_scores(
    model: CLIPHand3DModel, processor: CLIPHand3DProcessor, pixel_values: torch.Tensor, sentences: tuple[str, str, str]
) -> np.ndarray:
    """Cosine similarity (3,) per axis between one crop's pose embedding and the three sentences' embeddings.

    Args:
        model: a `CLIPHand3DModel` with its text tower (`text_tower(model.config)` is not None).
        processor: the model's processor (its tokenizer).
        pixel_values: (1, 3, S, S) the crop, as `processor(images=..., boxes=...)` makes it.
        sentences: (x, y, z) sentences, any text; each is truncated to the model's text length.
    """
    if text_tower(model.config) is None or model.text_model is None:
        raise ValueError("this model has no text tower (trained without the CLIP loss, or loaded without it)")
    if len(sentences) != 3 or not all(isinstance(sentence, str) for sentence in sentences):
        raise ValueError(f"sentences must be three strings (x, y, z), got {sentences!r}")
    if pixel_values.shape[0] != 1:
        raise ValueError(f"pixel_values must hold one crop, got shape {tuple(pixel_values.shape)}")
    tokens = processor.tokenize_prompts([tuple(sentences)])
    parameter = next(model.parameters())
    with torch.inference_mode():
        output = model(
            pixel_values=pixel_values.to(parameter.device, parameter.dtype),
            text_input_ids=torch.from_numpy(tokens["text_input_ids"]).to(parameter.device),
            text_attention_mask=torch.from_numpy(tokens["text_attention_mask"]).to(parameter.device),
            predict_mesh=False,
        )
    return (output.pose_embeds[0] * output.text_embeds[0]).sum(dim=-1).float().cpu().numpy()
