"""One dataset row -> the network's inputs and uvd targets, cropped exactly as the image processor crops.

A row (see `clip_hand3d.data.features`) holds an image, camera-frame joints (21, 3) and optionally vertices
(778, 3) in metres, the intrinsics `K`, the hand's scale, a hand box and the handedness. `HandSampleTransform`
turns one row into the network's inputs and targets with the `CLIPHand3DImageProcessor` that serves the model:
its crop transform, its crop warp, its normalisation and its uvd space. There is one definition of a crop.

Geometry (see `clip_hand3d.geometry`): the crop and the augmentation together form one 2D similarity `A` of the
image (original pixels -> crop pixels), `A = augmentation o processor.crop_transform(box, is_left)`.
`camera_after_affine(A, K)` gives the crop camera `(K_crop, R)`: the labels move to `R @ X` and project with
`K_crop` exactly where `A` puts the pixels.

Handedness: the crop of a left hand is mirrored (the processor's `is_left`), so the network always sees a right
hand. Flipping is implemented as toggling `is_left` before cropping: a flipped sample is cropped as if its hand
had the other handedness, so the network sees the mirror image of the hand, and `R` contains the same mirror, so
the labels are the mirrored hand too. The returned `is_left` is the toggled flag.

The two-view mode draws two independent augmentations of one row for the consistency losses. Both views share
the flip decision; `view2_affine_uv` maps view-1 uv (heatmap units) to view-2 uv. Depth `d` needs no map: the
views differ by a rotation about the optical axis, a scale and a shift, which leave root-relative depth alone.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from clip_hand3d.geometry import camera_after_affine, invert_affine, project, to_homogeneous_affine
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.image_utils import rgb_image
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, NUM_VERTICES, ROOT_JOINT
from clip_hand3d.modeling.losses import VIEW2_SUFFIX
from clip_hand3d.training.augmentation import (
    HandAugmentationConfig,
    ViewAugmentation,
    augment_pixels,
    augmentation_affine,
    sample_view_augmentation,
)


@dataclass
class HandLabels:
    """The validated fields of one row: metres, original image pixels."""

    image: PIL.Image.Image
    joints_xyz: np.ndarray
    vertices_xyz: np.ndarray | None
    K: np.ndarray
    scale: float
    box: np.ndarray
    is_left: bool


class HandSampleTransform:
    """Turn one dataset row into the network's inputs and uvd targets, with random augmentation.

    Args:
        image_processor: the processor that serves the model; its crop margin, normalisation and uvd space
            define the crops and the targets.
        augmentation: the random augmentation; `HandAugmentationConfig.eval()` (the default) for none.
        two_views: also return a second, independent augmentation of the row (suffix `_view2`).
        seed: make the augmentation reproducible (see `generator_for` and `__call__`); None draws fresh entropy.
        num_vertices: vertices of the mesh, the shape of `vertices_uvd` when a row has no mesh.
        uint8_pixels: return `pixel_values` as the uint8 RGB crop (3, S, S), to store crops compactly;
            `normalize_pixels` turns it into the network's input.

    Calling it on a row returns torch tensors (float32 unless said otherwise):
        pixel_values (3, S, S): the normalised crop (uint8 RGB with `uint8_pixels`).
        joints_xyz (21, 3): the joints in the crop camera frame, metres (`R @ X`); used to build the prompts.
        K_crop (3, 3): intrinsics of the crop camera, crop pixels.
        joints_uvd (21, 3), vertices_uvd (V, 3): targets in uvd space (see `clip_hand3d.geometry.UVDSpace`), the
            root depth being the z of joint 0 in the crop camera; vertices are zeros when the row has no mesh.
        vertices_valid (): bool, whether the row has a mesh.
        joints_valid (21,): bool, whether the joint lies inside the uvd space.
        scale (): the hand's scale (length of bone 9-10), metres.
        is_left (): bool, the handedness the crop was made for (toggled by a flip).
    and with `two_views`: pixel_values_view2, joints_uvd_view2, vertices_uvd_view2, joints_valid_view2 and
    view2_affine_uv (2, 3), the map from view-1 uv to view-2 uv (heatmap units; d is the same in both views).
    """

    def __init__(
        self,
        image_processor: CLIPHand3DImageProcessor,
        augmentation: HandAugmentationConfig | None = None,
        two_views: bool = False,
        seed: int | None = None,
        num_vertices: int = NUM_VERTICES,
        uint8_pixels: bool = False,
    ):
        if not isinstance(image_processor, CLIPHand3DImageProcessor):
            raise ValueError(f"image_processor must be a CLIPHand3DImageProcessor, got {type(image_processor).__name__}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
        self.image_processor = image_processor
        self.uvd_space = image_processor.uvd_space
        self.augmentation = augmentation if augmentation is not None else HandAugmentationConfig.eval()
        self.two_views = two_views
        self.seed = seed
        self.num_vertices = num_vertices
        self.uint8_pixels = uint8_pixels
        self.epoch = 0
        self._stream = None
        self._stream_key = None

    @property
    def image_size(self) -> int:
        """Side of the square crop, pixels."""
        return self.uvd_space.image_size

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation of a seeded transform from one epoch to the next (call before each epoch).

        DataLoader workers copy the transform when they start, so they see the new epoch when they are started
        for each epoch (the default, `persistent_workers=False`). Persistent workers keep the epoch they started
        with: their per-process streams still move on, but `generator_for` repeats itself across epochs.
        """
        self.epoch = epoch

    @property
    def is_random(self) -> bool:
        """Whether a row can give different samples from one call to the next (augmentation or two views)."""
        return self.two_views or self.augmentation != HandAugmentationConfig.eval()

    def normalize_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 RGB crops (..., 3, S, S) -> the network's float32 input, normalised by the image processor:
        what the transform returns without `uint8_pixels`."""
        return torch.from_numpy(self.image_processor.normalize(pixels.numpy()))

    def generator_for(self, index: int) -> np.random.Generator:
        """The generator of sample `index` in the current epoch: seeded from (seed, epoch, index), or from fresh
        entropy when the transform has no seed. Gives the same augmentation whichever worker meets the sample."""
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, self.epoch, 1, index])

    def __call__(self, row: Mapping, rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """Transform one row (see the class docstring for the output).

        Without `rng`, a seeded transform draws from one stream per process, seeded from (seed, epoch,
        DataLoader worker id): reproducible for a fixed sample order and number of workers. Without a seed, each
        call draws fresh entropy (so forked DataLoader workers never repeat each other).
        """
        labels = self.read_row(row)
        rng = rng if rng is not None else self._stream_generator()
        flipped = rng.random() < self.augmentation.flip_probability
        is_left = labels.is_left != flipped
        crop_affine = self.image_processor.crop_transform(labels.box, labels.image.height, labels.image.width, is_left)

        view = self._make_view(labels, crop_affine, sample_view_augmentation(self.augmentation, rng))
        sample = {
            "pixel_values": view["pixel_values"],
            "joints_xyz": view["joints_xyz"],
            "K_crop": view["K_crop"],
            "joints_uvd": view["joints_uvd"],
            "vertices_uvd": view["vertices_uvd"],
            "vertices_valid": torch.tensor(labels.vertices_xyz is not None),
            "joints_valid": view["joints_valid"],
            "scale": torch.tensor(labels.scale, dtype=torch.float32),
            "is_left": torch.tensor(is_left),
        }
        if self.two_views:
            view2 = self._make_view(labels, crop_affine, sample_view_augmentation(self.augmentation, rng))
            for name in ("pixel_values", "joints_uvd", "vertices_uvd", "joints_valid"):
                sample[name + VIEW2_SUFFIX] = view2[name]
            sample["view2_affine_uv"] = self._view2_affine_uv(view["affine"], view2["affine"])
        return sample

    def read_row(self, row: Mapping) -> HandLabels:
        """Check the fields of `row` and return them as arrays; raise a ValueError naming any bad field.

        `box` may be absent or None: the tight box of the projected joints is used instead. `vertices_xyz` may
        be absent or None for data sets without meshes.
        """
        for name in ("image", "joints_xyz", "K", "scale", "is_left"):
            if row.get(name) is None:
                raise ValueError(f"row has no field {name!r} (fields: {sorted(row)})")
        joints_xyz = _points_field(row, "joints_xyz", NUM_JOINTS)
        vertices_xyz = None
        if row.get("vertices_xyz") is not None:
            vertices_xyz = _points_field(row, "vertices_xyz", self.num_vertices)
        K = _float_array(row, "K")
        if K.shape != (3, 3):
            raise ValueError(f"field 'K' must have shape (3, 3), got {K.shape}")
        scale = _float_array(row, "scale")
        if scale.shape != () or not scale > 0:
            raise ValueError(f"field 'scale' must be one positive number (metres), got {row['scale']!r}")
        if row.get("box") is None:
            uv = project(joints_xyz, K)
            box = np.concatenate([uv.min(axis=0), uv.max(axis=0)])
        else:
            box = _float_array(row, "box")
            if box.shape != (4,) or not (box[2] > box[0] and box[3] > box[1]):
                raise ValueError(f"field 'box' must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {row['box']!r}")
        return HandLabels(
            image=rgb_image(row["image"], "field 'image'"),
            joints_xyz=joints_xyz,
            vertices_xyz=vertices_xyz,
            K=K,
            scale=float(scale),
            box=box,
            is_left=_bool_field(row, "is_left"),
        )

    def _stream_generator(self) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        worker_info = torch.utils.data.get_worker_info()
        worker_id = worker_info.id if worker_info is not None else -1
        key = (os.getpid(), self.epoch)
        if self._stream_key != key:
            self._stream = np.random.default_rng([self.seed, self.epoch, 0, worker_id + 1])
            self._stream_key = key
        return self._stream

    def _make_view(self, labels: HandLabels, crop_affine: np.ndarray, view: ViewAugmentation) -> dict:
        """Crop, colour and targets of one view; `affine` maps original pixels to this view's crop pixels."""
        augmentation = to_homogeneous_affine(augmentation_affine(view, self.image_size))
        affine = (augmentation @ to_homogeneous_affine(crop_affine))[:2]
        K_crop, R = camera_after_affine(affine, labels.K)
        joints_xyz = labels.joints_xyz @ R.T
        root_depth = joints_xyz[ROOT_JOINT, 2]
        joints_uvd = self.uvd_space.xyz_to_uvd(joints_xyz, K_crop, root_depth)
        if labels.vertices_xyz is None:
            vertices_uvd = np.zeros((self.num_vertices, 3))
        else:
            vertices_uvd = self.uvd_space.xyz_to_uvd(labels.vertices_xyz @ R.T, K_crop, root_depth)
        return {
            "affine": affine,
            "pixel_values": torch.from_numpy(self._pixels(labels.image, affine, view)),
            "joints_xyz": torch.from_numpy(joints_xyz.astype(np.float32)),
            "K_crop": torch.from_numpy(K_crop.astype(np.float32)),
            "joints_uvd": torch.from_numpy(joints_uvd.astype(np.float32)),
            "vertices_uvd": torch.from_numpy(vertices_uvd.astype(np.float32)),
            "joints_valid": torch.from_numpy(self.uvd_space.contains(joints_uvd)),
        }

    def _pixels(self, image: PIL.Image.Image, affine: np.ndarray, view: ViewAugmentation) -> np.ndarray:
        """The (3, S, S) crop through `affine`, colour-jittered: uint8 with `uint8_pixels`, else normalised."""
        crop = self.image_processor.crop(image, affine)
        if self.augmentation.changes_pixels:
            crop = augment_pixels(crop, view)
            if self.uint8_pixels:
                crop = np.rint(crop * 255).astype(np.uint8)
        crop = np.ascontiguousarray(crop.transpose(2, 0, 1))
        return crop if self.uint8_pixels else self.image_processor.normalize(crop)

    def _view2_affine_uv(self, affine1: np.ndarray, affine2: np.ndarray) -> torch.Tensor:
        """(2, 3) map from view-1 uv to view-2 uv, heatmap units: `A2 o A1^-1` conjugated by the heatmap scale."""
        crop_to_heatmap = np.diag([self.uvd_space.heatmap_per_pixel] * 2 + [1.0])
        view1_to_view2 = to_homogeneous_affine(affine2) @ to_homogeneous_affine(invert_affine(affine1))
        uv_map = crop_to_heatmap @ view1_to_view2 @ np.linalg.inv(crop_to_heatmap)
        return torch.from_numpy(uv_map[:2].astype(np.float32))


class HandBatchTransform:
    """Columnar batch in, columnar batch out: `HandSampleTransform` over the rows of a `datasets` batch, for
    `datasets.Dataset.with_transform` or `map(batched=True)`.

    Each row of the batch goes through `sample_transform`; the output has one list per field of its samples (the
    row's own columns are dropped). With `index_column` (a column of distinct sample indices), each row draws from
    `sample_transform.generator_for(index)`, which makes a seeded augmentation independent of the DataLoader's
    workers and of the order of the rows. A class rather than a closure so that DataLoader workers started with
    "spawn" can pickle it.
    """

    def __init__(self, sample_transform: HandSampleTransform, index_column: str | None = None):
        self.sample_transform = sample_transform
        self.index_column = index_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if self.index_column is not None and self.index_column not in batch:
            raise ValueError(
                f"index_column {self.index_column!r} is not a column of the batch (columns: {sorted(batch)})"
            )
        num_rows = len(next(iter(batch.values()), []))
        samples = []
        for position in range(num_rows):
            row = {name: column[position] for name, column in batch.items()}
            rng = None
            if self.index_column is not None:
                rng = self.sample_transform.generator_for(int(row[self.index_column]))
            samples.append(self.sample_transform(row, rng=rng))
        if not samples:
            return {}
        return {name: [sample[name] for sample in samples] for name in samples[0]}


def _float_array(row: Mapping, name: str) -> np.ndarray:
    try:
        array = np.asarray(row[name], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"field {name!r} must be numeric, got {row[name]!r}") from error
    if not np.isfinite(array).all():
        raise ValueError(f"field {name!r} has non-finite values")
    return array


def _points_field(row: Mapping, name: str, num_points: int) -> np.ndarray:
    """A (num_points, 3) camera-frame point field, every point in front of the camera."""
    points = _float_array(row, name)
    if points.shape != (num_points, 3):
        raise ValueError(f"field {name!r} must have shape ({num_points}, 3), got {points.shape}")
    if not (points[:, 2] > 0).all():
        raise ValueError(f"field {name!r} has points at or behind the camera (z <= 0); expected metres, camera frame")
    return points


def _bool_field(row: Mapping, name: str) -> bool:
    value = row[name]
    if not isinstance(value, bool | np.bool_ | int | np.integer) or value not in (0, 1):
        raise ValueError(f"field {name!r} must be a bool, got {value!r}")
    return bool(value)
