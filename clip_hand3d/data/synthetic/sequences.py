"""Video-like synthetic hands: sequences of frames of one hand, background and light, with a slowly moving pose
and camera, each sequence its own `group`.

They exist so that HandCLR's mining (`clip_hand3d.training.mining`), which must never pair two frames of one
video, has something video-like to be tested on, and so that pre-training can be tried without real videos.

Every frame is a pure function of `(seed, split, sequence, frame)`: what belongs to the whole sequence (the hand's
shape, skin, forearm, light, background, camera, the paths of its motion) is drawn from generators seeded by
`(seed, split, sequence)` alone, each key pose from one seeded by its key index, the sensor grain from one seeded
by the frame; so any frame can be rendered on its own, in any order. The streams are disjoint from the
single-image synthetic set's (`scene.sample_generator`) and between splits.

A sequence, over its frames:

- the finger articulation eases from one key pose (`ParametricHand.sample_pose`) to the next every
  `FRAMES_PER_KEY_POSE` frames (smoothstep: the fingers slow down at each key pose, as real hands do);
- the hand's orientation is drawn as a single sample's (`hand.sample_view`), turned back and forth about two
  random axes by up to `ROTATION_AMPLITUDE_DEGREES`, with periods of `MOTION_PERIOD_FRAMES`;
- the camera (intrinsics and placement drawn as for a single sample, on the first frame's hand) drifts by up to
  `CAMERA_DRIFT_METRES` along each axis, and the background, a plane `BACKGROUND_DEPTH_RANGE` metres away,
  shifts with it (parallax), up to `BACKGROUND_MARGIN` of the image side;
- the forearm, skin colours, lights and camera effects are those of the sequence in every frame: each frame's
  scene is `scene.compose_scene` around the frame's hand and camera, from the same generator state (the forearm
  keeps its bend, length and sleeve, and like a single sample's it is left out of a frame where its cut end would
  show; occluders stay where they are relative to the hand); each frame has its own sensor grain; left hands
  (`p_left`, per sequence) are mirrored.

The hand may leave the image in part, as in real videos; the rows' `box` is the tight box of the projected
joints and mesh, as everywhere.
"""

import itertools
import os
from collections.abc import Iterator

import numpy as np
import torch
from datasets import Dataset, Features, IterableDataset, Value
from scipy.spatial.transform import Rotation

from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH
from clip_hand3d.data.synthetic.appearance import sample_background
from clip_hand3d.data.synthetic.camera import sample_camera
from clip_hand3d.data.synthetic.dataset import (
    SYNTHETIC_DATA_VERSION,
    cached_dataset,
    check_synthetic_arguments,
    png_bytes,
    streaming_dataset,
)
from clip_hand3d.data.synthetic.hand import hand_model, sample_view, single_threaded_torch
from clip_hand3d.data.synthetic.render import scene_row
from clip_hand3d.data.synthetic.scene import SPLIT_STREAMS, compose_scene
from clip_hand3d.validation import check_non_negative_int, check_positive_int

# Part of the cache key of `load_synthetic_sequences`, with the single samples' `SYNTHETIC_DATA_VERSION` (the
# renderer's): bump it when the frames change.
SYNTHETIC_SEQUENCES_VERSION = 2
# The last entry of every sequence generator's seed: keeps sequences apart from single samples.
SEQUENCE_STREAM = 7
# What each generator of a sequence draws (the entry after SEQUENCE_STREAM).
_SCENE, _KEY_POSE, _APPEARANCE, _GRAIN = range(4)

FRAMES_PER_KEY_POSE = 12
ROTATION_AMPLITUDE_DEGREES = (8.0, 30.0)
MOTION_PERIOD_FRAMES = (40.0, 160.0)
CAMERA_DRIFT_METRES = ((0.0, 0.03), (0.0, 0.03), (0.0, 0.05))  # x, y, z amplitude ranges
BACKGROUND_DEPTH_RANGE = (1.0, 3.0)
BACKGROUND_MARGIN = 0.125  # the background is drawn this fraction of the side larger on each side

SEQUENCE_FEATURES = Features({**HAND_FEATURES_WITH_MESH, "group": Value("int64"), "frame": Value("int32")})


def sequence_generator(seed: int, split: str, sequence: int, *stream: int) -> np.random.Generator:
    """The generator of one part (`stream`, e.g. `(_KEY_POSE, key)`) of sequence `sequence` of `(seed, split)`."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), SPLIT_STREAMS[split], int(sequence), SEQUENCE_STREAM, *map(int, stream)])
    )


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


def _key_pose(seed: int, split: str, sequence: int, key: int) -> torch.Tensor:
    """Key pose `key` of a sequence: finger articulation (1, 15, 3), radians."""
    generator = _torch_generator(sequence_generator(seed, split, sequence, _KEY_POSE, key))
    return hand_model().sample_pose(1, generator)


class SequenceScene:
    """Everything one sequence keeps over its frames; `frame_scene(frame)` is a `scene.sample_scene`-like dict."""

    def __init__(self, sequence: int, seed: int = 0, split: str = "train", image_size: int = 224, p_left: float = 0.0):
        check_synthetic_arguments(seed, split, image_size, p_left)
        check_non_negative_int("sequence", sequence)
        self.sequence, self.seed, self.split, self.image_size = int(sequence), int(seed), split, int(image_size)
        rng = sequence_generator(seed, split, sequence, _SCENE)
        with torch.no_grad(), single_threaded_torch():
            self.shape = hand_model().sample_shape(1, _torch_generator(rng))
        self.base_rotation = sample_view(rng)
        axes = rng.normal(size=(2, 3))
        self.rotation_axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
        self.rotation_amplitudes = np.radians(rng.uniform(*ROTATION_AMPLITUDE_DEGREES, size=2))
        self.rotation_periods = rng.uniform(*MOTION_PERIOD_FRAMES, size=2)
        self.rotation_phases = rng.uniform(0, 2 * np.pi, size=2)
        self.drift_amplitudes = np.array([rng.uniform(*bounds) for bounds in CAMERA_DRIFT_METRES])
        self.drift_periods = rng.uniform(*MOTION_PERIOD_FRAMES, size=3)
        self.drift_phases = rng.uniform(0, 2 * np.pi, size=3)
        vertices, joints, _ = self.hand(0)
        # The camera is placed on the first frame's hand, with the drift of frame 0 taken back out.
        self.K, translation = sample_camera(rng, np.concatenate([vertices, joints]), image_size)
        self.translation = translation + self.camera_drift(0)
        self.margin = int(round(BACKGROUND_MARGIN * image_size))
        self.background = sample_background(rng, image_size + 2 * self.margin)
        self.background_depth = rng.uniform(*BACKGROUND_DEPTH_RANGE)
        self.is_left = bool(rng.random() < p_left)

    def rotation(self, frame: int) -> Rotation:
        """The hand's orientation in `frame`: the base rotation turned about the two wobble axes."""
        angles = self.rotation_amplitudes * np.sin(2 * np.pi * frame / self.rotation_periods + self.rotation_phases)
        wobble = Rotation.from_rotvec(angles[0] * self.rotation_axes[0]) * Rotation.from_rotvec(
            angles[1] * self.rotation_axes[1]
        )
        return wobble * self.base_rotation

    def finger_pose(self, frame: int) -> torch.Tensor:
        """The finger articulation (1, 15, 3) of `frame`: eased between the key poses around it."""
        position = frame / FRAMES_PER_KEY_POSE
        key = int(np.floor(position))
        weight = _smoothstep(position - key)
        first = _key_pose(self.seed, self.split, self.sequence, key)
        if weight == 0:
            return first
        return (1 - weight) * first + weight * _key_pose(self.seed, self.split, self.sequence, key + 1)

    def hand(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The posed right hand of `frame`, wrist at the origin: vertices (778, 3), joints (21, 3), rotation (3, 3)."""
        rotation = self.rotation(frame)
        with torch.no_grad(), single_threaded_torch():
            finger_pose = self.finger_pose(frame)
            global_orient = torch.as_tensor(rotation.as_rotvec(), dtype=finger_pose.dtype)[None]
            vertices, joints = hand_model()(global_orient, finger_pose, self.shape)
        return vertices[0].double().numpy(), joints[0].double().numpy(), rotation.as_matrix()

    def camera_drift(self, frame: int) -> np.ndarray:
        """The camera's displacement (3,) metres in `frame`, in its own axes."""
        return self.drift_amplitudes * np.sin(2 * np.pi * frame / self.drift_periods + self.drift_phases)

    def frame_background(self, frame: int) -> np.ndarray:
        """The (S, S, 3) uint8 window of the background seen in `frame`: shifted against the camera's drift."""
        shift = -self.K[0, 0] * self.camera_drift(frame)[:2] / self.background_depth
        x, y = np.clip(np.round(self.margin + shift), 0, 2 * self.margin).astype(int)
        return self.background[y : y + self.image_size, x : x + self.image_size]

    def frame_scene(self, frame: int) -> dict:
        """`frame` as a dict of the keys `scene.sample_scene` returns (render it with `render.render_scene`): the
        frame's hand and camera, and the sequence's forearm, colours, light and camera effects (drawn from the
        same generator state in every frame, placed on the frame's hand), the frame's window of the background and
        its own sensor grain."""
        check_non_negative_int("frame", frame)
        vertices, joints, rotation = self.hand(frame)
        translation = self.translation - self.camera_drift(frame)
        appearance_rng = sequence_generator(self.seed, self.split, self.sequence, _APPEARANCE)
        scene = compose_scene(appearance_rng, vertices, joints, rotation, self.K, translation, self.image_size)
        grain_rng = sequence_generator(self.seed, self.split, self.sequence, _GRAIN, frame)
        grain = scene["camera_effects"]["grain"]
        scene["camera_effects"]["grain"] = (grain_rng.normal(size=grain.shape) * grain.std()).astype(np.float32)
        return {**scene, "background": self.frame_background(frame), "is_left": self.is_left}

    def render_frame(self, frame: int) -> dict:
        """Frame `frame` as a row of `SEQUENCE_FEATURES` (PIL image and mask, `group` = the sequence)."""
        row = scene_row(self.frame_scene(frame), self.image_size)
        return {**row, "group": self.sequence, "frame": int(frame)}


def render_sequence_frame(
    sequence: int, frame: int, seed: int = 0, image_size: int = 224, split: str = "train", p_left: float = 0.0
) -> dict:
    """Frame `frame` of sequence `sequence` of the synthetic sequence set `(seed, split)`, a `SEQUENCE_FEATURES` row."""
    return SequenceScene(sequence, seed, split, image_size, p_left).render_frame(frame)


def generate_sequence_rows(
    sequences: list[int] | None, frames_per_sequence: int, seed: int, image_size: int, split: str, p_left: float
) -> Iterator[dict]:
    """Yield the rows of `sequences` (every sequence from 0 on when None), frame by frame, images as PNG bytes."""
    sequence_ids = iter(sequences) if sequences is not None else itertools.count()
    for sequence in sequence_ids:
        scene = SequenceScene(sequence, seed, split, image_size, p_left)
        for frame in range(frames_per_sequence):
            row = scene.render_frame(frame)
            yield {**row, "image": png_bytes(row["image"]), "mask": png_bytes(row["mask"])}


def load_synthetic_sequences(
    num_sequences: int,
    frames_per_sequence: int = 16,
    seed: int = 0,
    image_size: int = 224,
    split: str = "train",
    p_left: float = 0.0,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """`num_sequences` synthetic sequences of `frames_per_sequence` frames as a cached `datasets.Dataset` of
    `SEQUENCE_FEATURES` rows, sequence after sequence (row `sequence * frames_per_sequence + frame`); `group` is the
    sequence's index. Arguments as `clip_hand3d.data.synthetic.load_synthetic`'s."""
    check_synthetic_arguments(seed, split, image_size, p_left)
    check_positive_int("num_sequences", num_sequences)
    check_positive_int("frames_per_sequence", frames_per_sequence)
    gen_kwargs = {
        "sequences": list(range(num_sequences)),
        "frames_per_sequence": frames_per_sequence,
        "seed": seed,
        "image_size": image_size,
        "split": split,
        "p_left": p_left,
    }
    version = {"sequences": SYNTHETIC_SEQUENCES_VERSION, "renderer": SYNTHETIC_DATA_VERSION}
    return cached_dataset(generate_sequence_rows, SEQUENCE_FEATURES, gen_kwargs, version, num_proc, cache_dir)


def iter_synthetic_sequences(
    num_sequences: int | None = None,
    frames_per_sequence: int = 16,
    seed: int = 0,
    image_size: int = 224,
    split: str = "train",
    p_left: float = 0.0,
) -> IterableDataset:
    """The synthetic sequences as a streaming `datasets.IterableDataset` (rendered while iterating): the rows of
    `load_synthetic_sequences`; endless when `num_sequences` is None (each sequence is then a shard)."""
    check_synthetic_arguments(seed, split, image_size, p_left)
    check_positive_int("frames_per_sequence", frames_per_sequence)
    if num_sequences is not None:
        check_positive_int("num_sequences", num_sequences)
    gen_kwargs = {
        "sequences": None if num_sequences is None else list(range(num_sequences)),
        "frames_per_sequence": frames_per_sequence,
        "seed": seed,
        "image_size": image_size,
        "split": split,
        "p_left": p_left,
    }
    return streaming_dataset(generate_sequence_rows, SEQUENCE_FEATURES, gen_kwargs)
