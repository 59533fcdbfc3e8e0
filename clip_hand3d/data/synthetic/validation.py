"""Checks of the arguments that the synthetic set's entry points share; each raises a ValueError naming the
argument and the value it got.
"""

import numpy as np


def check_seed(seed: int) -> None:
    """Raise unless `seed` is a non-negative integer."""
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def check_num_samples(num_samples: int) -> None:
    """Raise unless `num_samples` is a positive integer."""
    if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")


def check_image_size(image_size: int) -> None:
    """Raise unless `image_size` (pixels) is an integer of at least 16."""
    if not (isinstance(image_size, (int, np.integer)) and image_size >= 16):
        raise ValueError(f"image_size must be an integer of at least 16 pixels, got {image_size!r}")


def check_probability(p_left: float) -> None:
    """Raise unless `p_left` lies in [0, 1]."""
    if not 0.0 <= p_left <= 1.0:
        raise ValueError(f"p_left must be a probability in [0, 1], got {p_left!r}")
