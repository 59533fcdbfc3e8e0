"""The library's shared argument checks accept what they promise and name the argument and value otherwise."""

import numpy as np
import pytest

from clip_hand3d.validation import check_choice, check_non_negative_int, check_positive_int, check_probability


def test_valid_values_pass():
    check_positive_int("batch_size", 1)
    check_positive_int("batch_size", np.int64(3))
    check_non_negative_int("seed", 0)
    check_probability("p_left", 0.0)
    check_probability("p_left", 1.0)
    check_choice("split", "train", ("train", "test"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_positive_int("batch_size", 0), "batch_size must be a positive integer, got 0"),
        (lambda: check_positive_int("batch_size", 2.0), "batch_size must be a positive integer, got 2.0"),
        (lambda: check_positive_int("batch_size", True), "batch_size must be a positive integer, got True"),
        (lambda: check_non_negative_int("seed", -1), "seed must be a non-negative integer, got -1"),
        (lambda: check_non_negative_int("seed", False), "seed must be a non-negative integer, got False"),
        (lambda: check_probability("p_left", 1.5), r"p_left must be a probability in \[0, 1\], got 1.5"),
        (
            lambda: check_choice("split", "val", ("train", "test")),
            r"split must be one of \('train', 'test'\), got 'val'",
        ),
    ],
)
def test_bad_values_raise_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()
