"""Processor of CLIP-Hand3D: the image processor and the prompt tokenizer behind one call.

Images become the network's crops (`CLIPHand3DImageProcessor`); camera-frame joints become the three text
prompts of section 3.1 of the paper (joints ordered along x, y, z) and their token ids. Saved with
`save_pretrained` as `processor_config.json` (with the image processor inside) plus the tokenizer's files, and
loaded offline with `CLIPHand3DProcessor.from_pretrained(folder)` or `AutoProcessor.from_pretrained(folder)`.
"""

from collections.abc import Mapping

import numpy as np
import torch
from transformers import AutoProcessor, PreTrainedTokenizerBase
from transformers.image_processing_base import BatchFeature
from transformers.processing_utils import ProcessorMixin

from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.modeling.configuration_clip_hand3d import MAX_TEXT_LENGTH, CLIPHand3DConfig
from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.prompts import build_prompts_batch
from clip_hand3d.tokenization import build_local_tokenizer


class CLIPHand3DProcessor(ProcessorMixin):
    r"""
    Bundles [`CLIPHand3DImageProcessor`] and a tokenizer (the local word-level one by default).

    Args:
        image_processor (`CLIPHand3DImageProcessor`, *optional*): defaults to a new one with default settings.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): defaults to `build_local_tokenizer()`.
        num_prompt_joints (`int`): joints named in each prompt (N of the paper), in 1..21.
        max_text_length (`int`): tokens per prompt; prompts are padded and truncated to it.
    """

    def __init__(
        self,
        image_processor: CLIPHand3DImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        num_prompt_joints: int = NUM_JOINTS,
        max_text_length: int = MAX_TEXT_LENGTH,
        **kwargs,
    ):
        if isinstance(num_prompt_joints, bool) or not isinstance(num_prompt_joints, int):
            raise ValueError(f"num_prompt_joints must be an int in 1..{NUM_JOINTS}, got {num_prompt_joints!r}")
        if not 1 <= num_prompt_joints <= NUM_JOINTS:
            raise ValueError(f"num_prompt_joints must be in 1..{NUM_JOINTS}, got {num_prompt_joints}")
        if isinstance(max_text_length, bool) or not isinstance(max_text_length, int) or max_text_length < 2:
            raise ValueError(f"max_text_length must be an int >= 2 (start and end tokens), got {max_text_length!r}")
        self.num_prompt_joints = num_prompt_joints
        self.max_text_length = max_text_length
        image_processor = CLIPHand3DImageProcessor() if image_processor is None else image_processor
        tokenizer = build_local_tokenizer() if tokenizer is None else tokenizer
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(
        self,
        images=None,
        boxes=None,
        is_left=None,
        joints_xyz: np.ndarray | torch.Tensor | None = None,
        generator: np.random.Generator | None = None,
        return_prompts: bool = False,
        return_tensors: str | None = "pt",
        max_image_pixels: int | None = None,
    ) -> BatchFeature:
        """Image features and/or tokenised prompts of a batch.

        Args:
            images, boxes, is_left: see `CLIPHand3DImageProcessor.preprocess`.
            joints_xyz: (B, 21, 3) camera-frame joints (metres) to describe; each sample draws its own
                `num_prompt_joints` joints with `generator`.
            generator: numpy random generator for the joint draw; a fresh default one when None.
            return_prompts: also return `prompts`, a list of B tuples (text_x, text_y, text_z).
            return_tensors: "pt" for torch tensors, "np" or None for numpy arrays.
            max_image_pixels: the largest image accepted (see `CLIPHand3DImageProcessor.preprocess`).

        Returns:
            BatchFeature with the image processor's fields when `images` is given, and when `joints_xyz` is given
            `text_input_ids` and `text_attention_mask`, both (B, 3, max_text_length) int64, axis order x, y, z.
        """
        if images is None and joints_xyz is None:
            raise ValueError("pass images, joints_xyz or both")
        if return_prompts and joints_xyz is None:
            raise ValueError("return_prompts=True needs joints_xyz")
        data = {}
        if images is not None:
            data.update(
                self.image_processor(
                    images, boxes=boxes, is_left=is_left, return_tensors=None, max_image_pixels=max_image_pixels
                )
            )
        prompts = None
        if joints_xyz is not None:
            texts_x, texts_y, texts_z = build_prompts_batch(joints_xyz, self.num_prompt_joints, generator)
            prompts = list(zip(texts_x, texts_y, texts_z, strict=True))
            if images is not None and len(prompts) != len(data["pixel_values"]):
                raise ValueError(f"got {len(data['pixel_values'])} images but {len(prompts)} samples of joints_xyz")
            data.update(self.tokenize_prompts(prompts))
        features = BatchFeature(data=data, tensor_type=return_tensors)
        if return_prompts:
            features["prompts"] = prompts
        return features

    def tokenize_prompts(self, prompts: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
        """B (text_x, text_y, text_z) tuples -> `text_input_ids`, `text_attention_mask` (B, 3, L) int64 arrays."""
        flat_texts = [text for sample in prompts for text in sample]
        encoding = self.tokenizer(
            flat_texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="np",
        )
        shape = (len(prompts), 3, self.max_text_length)
        return {
            "text_input_ids": encoding["input_ids"].astype(np.int64).reshape(shape),
            "text_attention_mask": encoding["attention_mask"].astype(np.int64).reshape(shape),
        }

    def post_process(self, outputs, inputs: Mapping, K=None, root_depth=None, bone_length=None) -> list[dict]:
        """See `CLIPHand3DImageProcessor.post_process`."""
        return self.image_processor.post_process(outputs, inputs, K=K, root_depth=root_depth, bone_length=bone_length)


AutoProcessor.register(CLIPHand3DConfig, CLIPHand3DProcessor, exist_ok=True)
