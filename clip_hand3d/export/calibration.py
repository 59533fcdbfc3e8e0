"""Calibration crops for int8: the images static quantisation measures activation ranges on.

SPEC is a data set spec as train.py's `--dataset` takes (its training split), or `random`:

- `synthetic` (the default): `num_samples` of the package's synthetic hands (rendered on first use, then cached);
  `synthetic:N` renders N and uses the first `num_samples`;
- `freihand:PATH`, `rhd:PATH`, `stb:PATH` (joined by `+`): the first `num_samples` rows of their training splits;
- `random` (or `random:N`): standard normal crops; only for speed measurements, the ranges they give are not a
  trained model's.

Crops are cut by the processor saved with the model, exactly as at inference (no augmentation).
"""

import numpy as np

from clip_hand3d.validation import check_positive_int

DEFAULT_CALIBRATION = "synthetic"
DEFAULT_CALIBRATION_SAMPLES = 128


def parse_random_spec(spec: str) -> int | None:
    """N of "random" / "random:N" (None: every sample asked for); raises ValueError for a bad N."""
    _, colon, count = spec.partition(":")
    if not colon:
        return None
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"calibration spec {spec!r}: expected random or random:N with a positive N")
    return int(count)


def calibration_crops(
    spec: str, processor, num_samples: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0
) -> np.ndarray:
    """(N, 3, S, S) float32 normalised crops for calibration, N = min(num_samples, the spec's size)."""
    check_positive_int("num_samples", num_samples)
    image_processor = getattr(processor, "image_processor", processor)
    size = image_processor.image_size
    if spec == "random" or spec.startswith("random:"):
        count = min(num_samples, parse_random_spec(spec) or num_samples)
        return np.random.default_rng(seed).standard_normal((count, 3, size, size)).astype(np.float32)
    from clip_hand3d.training.data import load_split, training_transform, with_sample_transform

    data_spec = f"synthetic:{num_samples}" if spec == "synthetic" else spec
    rows = load_split(data_spec, train=True, image_size=size, seed=seed)
    rows = rows.select(range(min(num_samples, len(rows))))
    samples = with_sample_transform(rows, training_transform(processor))
    crops = [np.asarray(samples[index]["pixel_values"], dtype=np.float32) for index in range(len(samples))]
    return np.stack(crops)


def batches(crops: np.ndarray, batch_size: int = 16) -> list[np.ndarray]:
    """`crops` cut into consecutive batches of at most `batch_size`."""
    check_positive_int("batch_size", batch_size)
    return [crops[start : start + batch_size] for start in range(0, len(crops), batch_size)]
