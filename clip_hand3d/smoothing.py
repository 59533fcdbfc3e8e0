"""Temporal smoothing of the hands `HandMeshPipeline` finds in a video: a One Euro filter per hand track.

```python
from clip_hand3d.smoothing import HandSmoother

smoother = HandSmoother(min_cutoff=1.0, beta=0.01)
for time_s, frame in frames:
    hands = smoother(pipe(frame), time_s)     # the same dicts, smoothed, each with a `track_id`
```

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is an exponential smoother whose cutoff frequency rises
with the signal's speed: still hands are smoothed hard (little jitter), fast ones lightly (little lag). With
time stamps t_i, dt = t_i - t_{i-1}, and `alpha(fc) = r / (r + 1)` where r = 2 pi fc dt:

    dx_i  = alpha(d_cutoff) (x_i - xs_{i-1}) / dt + (1 - alpha(d_cutoff)) dx_{i-1}
    fc_i  = min_cutoff + beta |dx_i|
    xs_i  = alpha(fc_i) x_i + (1 - alpha(fc_i)) xs_{i-1}

element by element of an array. Hands are matched to tracks frame by frame by their boxes' overlap (IoU, optimal
assignment); a hand joins only a track of its own handedness; a track unmatched for more than `max_missed` frames
ends, and an unmatched hand starts a new one (its first frame passes unchanged).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from clip_hand3d.validation import check_non_negative_int, check_probability

# The fields smoothed, and whether they are in pixels (True) or metres (False).
PIXEL_FIELDS = ("box", "keypoints_2d")
METRE_FIELDS = ("joints_3d", "vertices_3d", "joints_cam", "vertices_cam")
# `beta` is given per pixel (per pixel / s of speed) and per millimetre for the metric fields.
MILLIMETRES_PER_METRE = 1000.0


def check_one_euro_parameters(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    """Raise a ValueError naming the parameter unless both cutoffs are positive and `beta` non-negative, all
    finite numbers."""
    for name, value, least in (("min_cutoff", min_cutoff, None), ("beta", beta, 0.0), ("d_cutoff", d_cutoff, None)):
        number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        if not number or (value <= 0 if least is None else value < least):
            kind = "a positive" if least is None else "a non-negative"
            raise ValueError(f"{name} must be {kind} finite number, got {value!r}")


def smoothing_factor(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """The exponential smoothing factor alpha of a first-order low-pass filter with cutoff `cutoff` (Hz, a number
    or an array) sampled every `dt` seconds: r / (r + 1), r = 2 pi cutoff dt (the weight of the new sample)."""
    r = 2.0 * np.pi * cutoff * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """The One Euro filter of one signal (a number or an array, filtered element by element).

    Args:
        min_cutoff: the cutoff of a still signal, Hz (lower: smoother, more lag).
        beta: how fast the cutoff rises with speed, Hz per (signal unit / s); 0 is a plain low-pass filter.
        d_cutoff: the cutoff of the low-pass filter on the speed, Hz.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        check_one_euro_parameters(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        """The filtered value of sample `x` taken at time `t` (seconds, later than the previous sample's)."""
        x = np.asarray(x, dtype=np.float64)
        t = float(t)
        if self.value is None:
            self.value, self.speed, self.time = x, np.zeros_like(x), t
            return x
        if x.shape != self.value.shape:
            raise ValueError(f"a sample of shape {x.shape} follows samples of shape {self.value.shape}")
        dt = t - self.time
        if not dt > 0:
            raise ValueError(f"time stamps must increase: {t} s follows {self.time} s")
        a_d = smoothing_factor(self.d_cutoff, dt)
        self.speed = a_d * (x - self.value) / dt + (1.0 - a_d) * self.speed
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        a = smoothing_factor(cutoff, dt)
        self.value = a * x + (1.0 - a) * self.value
        self.time = t
        return self.value


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(A, B) intersection over union of (A, 4) and (B, 4) boxes (x1, y1, x2, y2), any unit."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)[None]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class HandTrack:
    """One hand followed across frames: its id, handedness, last raw box (pixels) and a filter per field."""

    track_id: int
    is_left: bool
    box: np.ndarray
    filters: dict[str, OneEuroFilter] = field(default_factory=dict)
    missed: int = 0


class HandSmoother:
    """One Euro smoothing of the pipeline's hands per hand track (see the module doc).

    Args:
        min_cutoff: the cutoff of a still hand, Hz.
        beta: the cutoff's rise with speed, Hz per (pixel / s) for `box` and `keypoints_2d` and per (mm / s) for
            the metric fields (`joints_3d`, `vertices_3d`, `joints_cam`, `vertices_cam`).
        d_cutoff: the cutoff of the speed's filter, Hz.
        iou_threshold: the least box IoU, in [0, 1], at which a hand continues a track.
        max_missed: frames a track may go unmatched before it ends.
    """

    def __init__(
        self,
        min_cutoff: float = 1.0,
        beta: float = 0.01,
        d_cutoff: float = 1.0,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
    ):
        check_one_euro_parameters(min_cutoff, beta, d_cutoff)
        check_probability("iou_threshold", iou_threshold)
        check_non_negative_int("max_missed", max_missed)
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.iou_threshold = float(iou_threshold)
        self.max_missed = max_missed
        self.tracks: list[HandTrack] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self.tracks, self._next_id = [], 0

    def __call__(self, hands: Sequence[Mapping], t: float) -> list[dict]:
        """The hands of the frame at time `t` (seconds), smoothed: new dicts, in the order given, each with its
        `track_id`; fields a hand lacks are left out, the input is not changed."""
        boxes = [_hand_box(hand, index) for index, hand in enumerate(hands)]
        matches = self._match(hands, boxes)
        unmatched = [track for track in self.tracks if all(track is not m for m in matches.values())]
        smoothed = []
        for index, hand in enumerate(hands):
            track = matches.get(index) or self._start_track(bool(hand["is_left"]), boxes[index])
            track.box, track.missed = boxes[index], 0
            smoothed.append(self._smooth(track, hand, t))
        for track in unmatched:
            track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        return smoothed

    def _match(self, hands: Sequence[Mapping], boxes: list[np.ndarray]) -> dict[int, HandTrack]:
        """Hand index -> the existing track it continues (best total IoU; same handedness, IoU >= threshold)."""
        if not self.tracks or not hands:
            return {}
        iou = box_iou(np.stack(boxes), np.stack([track.box for track in self.tracks]))
        same_hand = np.array([[bool(h["is_left"]) == t.is_left for t in self.tracks] for h in hands])
        allowed = same_hand & (iou >= self.iou_threshold) & (iou > 0)
        rows, cols = linear_sum_assignment(np.where(allowed, 1.0 - iou, 2.0))
        return {int(r): self.tracks[c] for r, c in zip(rows, cols, strict=True) if allowed[r, c]}

    def _start_track(self, is_left: bool, box: np.ndarray) -> HandTrack:
        track = HandTrack(self._next_id, is_left, box)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _smooth(self, track: HandTrack, hand: Mapping, t: float) -> dict:
        result = dict(hand)
        for name in PIXEL_FIELDS + METRE_FIELDS:
            if hand.get(name) is None:
                continue
            if name not in track.filters:
                beta = self.beta * (MILLIMETRES_PER_METRE if name in METRE_FIELDS else 1.0)
                track.filters[name] = OneEuroFilter(self.min_cutoff, beta, self.d_cutoff)
            value = track.filters[name](hand[name], t)
            result[name] = tuple(float(v) for v in value) if name == "box" else value.astype(np.float32)
        result["track_id"] = track.track_id
        return result


def _hand_box(hand: Mapping, index: int) -> np.ndarray:
    box = np.asarray(hand.get("box"), dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"hand {index}: 'box' must be 4 finite numbers (x1, y1, x2, y2), got {hand.get('box')!r}")
    if "is_left" not in hand:
        raise ValueError(f"hand {index}: has no 'is_left' field")
    return box
