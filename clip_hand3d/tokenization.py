"""Tokenizers for the prompts: a small local word-level tokenizer (no network) or any Hub tokenizer by name.

The local tokenizer knows exactly the closed vocabulary of `clip_hand3d.prompts`: the axis prefixes, "the
joints are" / "the joint is", "and", the words of every joint name, "," and ".". Text is lower-cased and split
on whitespace and punctuation; like CLIP's tokenizer it wraps every text in `<|startoftext|>` ...
`<|endoftext|>` and pads with `<|endoftext|>` (the attention mask tells padding from the real end).
"""

import re

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from clip_hand3d.modeling.configuration_clip_hand3d import MAX_TEXT_LENGTH
from clip_hand3d.modeling.hand_joints import JOINT_NAMES
from clip_hand3d.prompts import AXIS_PREFIXES

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<unk>"
CONNECTING_WORDS = ("the", "joints", "joint", "are", "is", "and")
PUNCTUATION = (",", ".")
# 3 special tokens + 8 prefix words + 6 connecting words + 10 joint-name words + 2 punctuation marks.
LOCAL_VOCAB_SIZE = 29


def _words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of `text`, as the local tokenizer splits them."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def local_vocabulary() -> list[str]:
    """The local tokenizer's tokens in id order: special tokens, then words by first appearance."""
    words = [word for prefix in AXIS_PREFIXES for word in _words(prefix) if word not in PUNCTUATION]
    words += CONNECTING_WORDS
    words += [word for name in JOINT_NAMES for word in _words(name)]
    words += PUNCTUATION
    return [BOS_TOKEN, EOS_TOKEN, UNK_TOKEN] + list(dict.fromkeys(words))


def build_local_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the prompts' closed vocabulary (LOCAL_VOCAB_SIZE tokens), built offline."""
    vocabulary = {token: index for index, token in enumerate(local_vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A {EOS_TOKEN}",
        special_tokens=[(BOS_TOKEN, vocabulary[BOS_TOKEN]), (EOS_TOKEN, vocabulary[EOS_TOKEN])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MAX_TEXT_LENGTH,
    )


def load_tokenizer(name_or_path: str | None = None) -> PreTrainedTokenizerBase:
    """The local tokenizer when `name_or_path` is None, else `AutoTokenizer.from_pretrained(name_or_path)`.

    A Hub name such as "openai/clip-vit-base-patch32" needs a network (or the Hugging Face cache); a local
    folder written by `save_pretrained` does not.
    """
    if name_or_path is None:
        return build_local_tokenizer()
    return AutoTokenizer.from_pretrained(name_or_path)
