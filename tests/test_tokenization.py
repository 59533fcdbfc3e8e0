import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from clip_hand3d.prompts import build_prompts
from clip_hand3d.tokenization import (
    BOS_TOKEN,
    EOS_TOKEN,
    LOCAL_VOCAB_SIZE,
    MAX_TEXT_LENGTH,
    UNK_TOKEN,
    build_local_tokenizer,
    load_tokenizer,
    local_vocabulary,
)

# Hand-computed from the vocabulary order: specials 0-2, from 3, left 4, to 5, right 6, the 11, joint 13, is 15,
# wrist 17, "," 27, "." 28.
WRIST_PROMPT = "From left to right, the joint is wrist."
WRIST_PROMPT_IDS = [0, 3, 4, 5, 6, 27, 11, 13, 15, 17, 28, 1]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return build_local_tokenizer()


def test_vocabulary_is_small_stable_and_closed(tokenizer):
    vocabulary = local_vocabulary()
    assert len(tokenizer) == len(vocabulary) == LOCAL_VOCAB_SIZE == 29
    assert len(set(vocabulary)) == len(vocabulary)
    assert vocabulary[:3] == [BOS_TOKEN, EOS_TOKEN, UNK_TOKEN]
    assert tokenizer(WRIST_PROMPT)["input_ids"] == WRIST_PROMPT_IDS


def test_special_tokens(tokenizer):
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS_TOKEN, EOS_TOKEN, EOS_TOKEN)
    assert tokenizer.unk_token == UNK_TOKEN
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.model_max_length == MAX_TEXT_LENGTH


def test_every_prompt_word_is_known_and_the_longest_prompt_fits(tokenizer):
    joints = np.random.default_rng(0).normal(size=(21, 3))
    for text in build_prompts(joints, num_joints=21):
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        # bos + 5 prefix tokens + "the joints are" + 41 name words + 20 commas + "and" + "." + eos
        assert len(ids) == 73 <= MAX_TEXT_LENGTH
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_lower_cases_and_maps_unknown_words_to_unk(tokenizer):
    assert tokenizer("FROM Left TO right")["input_ids"] == tokenizer("from left to right")["input_ids"]
    assert tokenizer("the pinky.")["input_ids"] == [0, 11, 2, 28, 1]


def test_padding_and_truncation(tokenizer):
    encoding = tokenizer([WRIST_PROMPT], padding="max_length", max_length=16, truncation=True)
    assert encoding["input_ids"][0] == WRIST_PROMPT_IDS + [tokenizer.pad_token_id] * 4
    assert encoding["attention_mask"][0] == [1] * 12 + [0] * 4
    truncated = tokenizer([WRIST_PROMPT], padding="max_length", max_length=5, truncation=True)["input_ids"][0]
    assert truncated == [0, 3, 4, 5, 1]


def test_save_and_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    texts = [WRIST_PROMPT, "From near to far, the joints are ring MCP and thumb fingertip."]
    expected = tokenizer(texts, padding="max_length", max_length=MAX_TEXT_LENGTH)
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), load_tokenizer(str(tmp_path))):
        assert len(loaded) == LOCAL_VOCAB_SIZE
        assert loaded(texts, padding="max_length", max_length=MAX_TEXT_LENGTH) == expected
        assert loaded.pad_token == EOS_TOKEN and loaded.bos_token == BOS_TOKEN


def test_load_tokenizer_without_name_is_the_local_one():
    tokenizer = load_tokenizer()
    assert len(tokenizer) == LOCAL_VOCAB_SIZE
    assert tokenizer(WRIST_PROMPT)["input_ids"] == WRIST_PROMPT_IDS


def test_load_tokenizer_of_a_missing_folder_fails(tmp_path):
    with pytest.raises(OSError):
        load_tokenizer(str(tmp_path / "missing"))
