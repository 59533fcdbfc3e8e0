"""Checks of arguments that several parts of the library share; each raises a ValueError naming the argument and
the value it got.
"""

from collections.abc import Collection

import numpy as np


def check_positive_int(name: str, value: int) -> None:
    """Raise unless `value` is an integer (Python or numpy, not a bool) of at least 1; `name` names it in the
    message."""
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_non_negative_int(name: str, value: int) -> None:
    """Raise unless `value` is an integer (Python or numpy, not a bool) of at least 0; `name` names it in the
    message."""
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 0):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_probability(name: str, value: float) -> None:
    """Raise unless `value` lies in [0, 1]; `name` names it in the message."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def check_choice(name: str, value: object, choices: Collection) -> None:
    """Raise unless `value` is one of `choices`; the message names `name` and lists `choices` as given."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
