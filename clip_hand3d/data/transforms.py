"""On-the-fly augmentation and training targets for hand rows, and the collation of their batches.

A row (see `clip_hand3d.data.features`) holds an image, camera-frame joints (21, 3) and optionally vertices
(778, 3) in metres, the intrinsics `K`, the hand's scale, a hand box and the handedness. `HandSampleTransform`
turns one row into the network's inputs and targets; `make_batch_transform` wraps it for
`datasets.Dataset.with_transform`; `collate_hand_batch` stacks the samples for a `DataLoader`.

Geometry (see `clip_hand3d.geometry`): the crop and every augmentation together form one 2D similarity `A` of
the image (original pixels -> crop pixels), `A = augmentation o square_box_affine(box, image_size, mirror)`.
`camera_after_affine(A, K)` gives the crop camera `(K_crop, R)`: the labels move to `R @ X` and project with
`K_crop` exactly where `A` puts the pixels. Pixel centres sit at integer coordinates; PIL puts them at half
integers, which `crop_image` accounts for.

Handedness: the crop of a left hand is mirrored (`mirror=is_left`), so the network always sees a right hand.
Flipping is implemented as toggling `is_left` before cropping: a flipped sample is cropped as if its hand had
the other handedness, so the network sees the mirror image of the hand (a right hand looks like a left one), and
`R` contains the same mirror, so the labels are the mirrored hand too. The returned `is_left` is the toggled
flag, i.e. exactly what the sample would give without flipping had the row's `is_left` been the opposite.
(Mirroring the image and then mirroring the "new" left hand back would cancel out and change nothing.)

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

from clip_hand3d.data.features import NUM_VERTICES
from clip_hand3d.geometry import (
    camera_after_affine,
    invert_affine,
    project,
    square_box_affine,
    to_homogeneous_affine,
    xyz_to_uvd,
)
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, ROOT_JOINT

# ImageNet's RGB statistics, which the ResNet encoder was trained with (also the image processor's defaults).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601-2 luma weights (the grey level of an RGB colour) and the RGB -> YIQ matrix whose first row they are.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
YIQ_FROM_RGB = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])

TWO_VIEW_SUFFIX = "_view2"


@dataclass
class HandAugmentationConfig:
    """Random augmentation of one training sample. `eval()` gives the no-randomness preset.

    Args:
        rotation_degrees: the image rotates by an angle drawn uniformly in [-rotation_degrees, rotation_degrees]
            (degrees) about the crop centre...
        rotation_probability: ...with this probability, and not at all otherwise.
        scale_range: the crop's side is multiplied by a factor drawn uniformly in this range (a larger crop
            shows a smaller hand).
        shift_fraction: the hand moves in the crop by a shift drawn uniformly in [-shift_fraction,
            shift_fraction] of the crop's side, independently along x and y.
        brightness, contrast, saturation: colour jitter strengths; each factor is drawn uniformly in
            [1 - strength, 1 + strength] (0 turns it off).
        hue: the hue turns by an angle drawn uniformly in [-hue, hue] of a full turn (at most 0.5; 0 turns it off).
        flip_probability: probability of flipping the sample, i.e. toggling its handedness (see the module
            docstring: the network then sees the mirrored hand, and the labels are mirrored with it).
    """

    rotation_degrees: float = 45.0
    rotation_probability: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.25)
    shift_fraction: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    flip_probability: float = 0.0

    def __post_init__(self):
        self.scale_range = tuple(float(value) for value in self.scale_range)
        for name in ("rotation_degrees", "shift_fraction", "brightness", "contrast", "saturation", "hue"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"HandAugmentationConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) > 1:
                raise ValueError(f"HandAugmentationConfig.{name} must be <= 1, got {getattr(self, name)}")
        if self.hue > 0.5:
            raise ValueError(f"HandAugmentationConfig.hue must be <= 0.5 (half a turn), got {self.hue}")
        for name in ("rotation_probability", "flip_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"HandAugmentationConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(
                f"HandAugmentationConfig.scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}"
            )

    @classmethod
    def train(cls) -> "HandAugmentationConfig":
        """The training preset: the defaults."""
        return cls()

    @classmethod
    def eval(cls) -> "HandAugmentationConfig":
        """The evaluation preset: no randomness, the crop is `square_box_affine` of the box alone."""
        return cls(
            rotation_degrees=0.0,
            rotation_probability=0.0,
            scale_range=(1.0, 1.0),
            shift_fraction=0.0,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            hue=0.0,
            flip_probability=0.0,
        )

    @property
    def has_colour_jitter(self) -> bool:
        """Whether any of brightness, contrast, saturation and hue is on."""
        return self.brightness > 0 or self.contrast > 0 or self.saturation > 0 or self.hue > 0


@dataclass(frozen=True)
class ViewAugmentation:
    """One draw of the augmentation of one view.

    Attributes:
        rotation_degrees: rotation of the image about the crop centre, degrees.
        scale: factor on the crop's side.
        shift: (x, y) shift of the hand in the crop, fractions of the crop's side.
        brightness, contrast, saturation: colour factors (1 leaves the colour alone).
        hue: hue rotation, fraction of a full turn.
    """

    rotation_degrees: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0


def sample_view_augmentation(config: HandAugmentationConfig, rng: np.random.Generator) -> ViewAugmentation:
    """Draw one view's augmentation. Always consumes the same number of random numbers, whatever the config."""
    rotate = rng.random() < config.rotation_probability
    angle = rng.uniform(-config.rotation_degrees, config.rotation_degrees)
    scale = rng.uniform(*config.scale_range)
    shift = rng.uniform(-config.shift_fraction, config.shift_fraction, size=2)
    brightness, contrast, saturation = (
        rng.uniform(1 - strength, 1 + strength) for strength in (config.brightness, config.contrast, config.saturation)
    )
    hue = rng.uniform(-config.hue, config.hue)
    return ViewAugmentation(
        rotation_degrees=float(angle) if rotate else 0.0,
        scale=float(scale),
        shift=(float(shift[0]), float(shift[1])),
        brightness=float(brightness),
        contrast=float(contrast),
        saturation=float(saturation),
        hue=float(hue),
    )


def augmentation_affine(view: ViewAugmentation, image_size: int) -> np.ndarray:
    """(2, 3) similarity from the un-augmented crop's pixels to the augmented crop's pixels (both `image_size`).

    The crop's content rotates by `view.rotation_degrees` and shrinks by `1 / view.scale` about the crop centre,
    then moves by `view.shift * image_size` pixels.
    """
    angle = np.deg2rad(view.rotation_degrees)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / view.scale
    centre = np.full(2, image_size / 2)
    translation = centre - linear @ centre + np.asarray(view.shift) * image_size
    return np.concatenate([linear, translation[:, None]], axis=1)


def crop_image(image: PIL.Image.Image, affine: np.ndarray, output_size: int) -> PIL.Image.Image:
    """Warp `image` by the (2, 3) `affine` (original pixels -> output pixels) into an `output_size` square.

    Bilinear; outside the image is black. When the warp shrinks the image by 2 or more, the image is first
    box-filtered by the largest integer factor `f` it still shrinks by (`PIL.Image.reduce`), against aliasing:
    reduced pixel i averages original pixels f*i .. f*i + f - 1, whose centre is f*i + (f - 1) / 2.

    Our pixel centres sit at integer coordinates and PIL's at half integers, so the affine PIL receives is
    `p -> affine(p - 1/2) + 1/2`, inverted (PIL maps output to input).
    """
    affine = to_homogeneous_affine(affine)
    factor = int(np.floor(1 / np.sqrt(abs(np.linalg.det(affine[:2, :2])))))
    if factor >= 2:
        image = image.reduce(factor)
        offset = (factor - 1) / 2
        affine = affine @ np.array([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]])
    half_pixel = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    pil_affine = half_pixel @ affine @ np.linalg.inv(half_pixel)
    output_to_input = np.linalg.inv(pil_affine)[:2].reshape(-1)
    return image.transform(
        (output_size, output_size),
        PIL.Image.Transform.AFFINE,
        tuple(output_to_input),
        resample=PIL.Image.Resampling.BILINEAR,
    )


def jitter_colour(pixels: np.ndarray, view: ViewAugmentation) -> np.ndarray:
    """Apply brightness, contrast, saturation and hue factors, in that order, to RGB `pixels` (H, W, 3) in [0, 1].

    Brightness scales the colours; contrast blends with the mean grey level of the image; saturation with each
    pixel's grey level; hue rotates the chroma plane (I, Q) of YIQ space. All four are affine maps of the
    colour, applied at once as one 3 x 3 matrix and offset; the result is clipped to [0, 1].
    """
    greys = np.outer(np.ones(3), LUMA_WEIGHTS)  # colour -> its grey level on every channel
    saturation = view.saturation * np.eye(3) + (1 - view.saturation) * greys
    angle = 2 * np.pi * view.hue
    chroma_rotation = np.array(
        [[1.0, 0.0, 0.0], [0.0, np.cos(angle), -np.sin(angle)], [0.0, np.sin(angle), np.cos(angle)]]
    )
    hue = np.linalg.inv(YIQ_FROM_RGB) @ chroma_rotation @ YIQ_FROM_RGB
    mean_grey = view.brightness * float(pixels.reshape(-1, 3).mean(axis=0) @ LUMA_WEIGHTS)
    # contrast(brightness(x)) = contrast * brightness * x + (1 - contrast) * mean_grey, then saturation, then hue.
    matrix = hue @ saturation * (view.contrast * view.brightness)
    offset = hue @ saturation @ np.full(3, (1 - view.contrast) * mean_grey)
    jittered = pixels.reshape(-1, 3) @ matrix.T.astype(np.float32) + offset.astype(np.float32)
    return np.clip(jittered, 0.0, 1.0).reshape(pixels.shape)


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
        image_size: side of the square crop, pixels.
        heatmap_size: u, v resolution of the targets (heatmap pixels).
        depth_size: number of depth bins of d.
        depth_range: metres spanned by the depth bins, centred on the root joint.
        image_mean, image_std: per-channel normalisation of the [0, 1] RGB crop.
        augmentation: the random augmentation; `HandAugmentationConfig.eval()` for none.
        two_views: also return a second, independent augmentation of the row (suffix `_view2`).
        seed: make the augmentation reproducible (see `generator_for` and `__call__`); None draws fresh entropy.
        num_vertices: vertices of the mesh (778), the shape of `vertices_uvd` when a row has no mesh.
        uint8_pixels: return `pixel_values` as the uint8 RGB crop (3, S, S), to store crops compactly;
            `normalize_pixels` turns it into the network's input.

    Calling it on a row returns torch tensors (float32 unless said otherwise):
        pixel_values (3, S, S): the normalised crop (uint8 RGB with `uint8_pixels`).
        joints_xyz (21, 3): the joints in the crop camera frame, metres (`R @ X`); used to build the prompts.
        K_crop (3, 3): intrinsics of the crop camera, crop pixels.
        joints_uvd (21, 3), vertices_uvd (778, 3): targets in uvd space (see `clip_hand3d.geometry`), the root
            depth being the z of joint 0 in the crop camera; vertices are zeros when the row has no mesh.
        vertices_valid (): bool, whether the row has a mesh.
        joints_valid (21,): bool, whether u, v lie in [0, heatmap_size) and d in [0, depth_size).
        scale (): the hand's scale (length of bone 9-10), metres.
        is_left (): bool, the handedness the crop was made for (toggled by a flip).
    and with `two_views`: pixel_values_view2, joints_uvd_view2, vertices_uvd_view2, joints_valid_view2 and
    view2_affine_uv (2, 3), the map from view-1 uv to view-2 uv (heatmap units; d is the same in both views).
    """

    def __init__(
        self,
        image_size: int = 224,
        heatmap_size: int = 56,
        depth_size: int = 56,
        depth_range: float = 0.3,
        image_mean: tuple[float, float, float] = IMAGENET_MEAN,
        image_std: tuple[float, float, float] = IMAGENET_STD,
        augmentation: HandAugmentationConfig | None = None,
        two_views: bool = False,
        seed: int | None = None,
        num_vertices: int = NUM_VERTICES,
        uint8_pixels: bool = False,
    ):
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(f"image_mean and image_std need 3 values, std > 0; got {image_mean} and {image_std}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
        self.image_size = image_size
        self.heatmap_size = heatmap_size
        self.depth_size = depth_size
        self.depth_range = depth_range
        self.image_mean = np.asarray(image_mean, dtype=np.float32)
        self.image_std = np.asarray(image_std, dtype=np.float32)
        self.augmentation = augmentation if augmentation is not None else HandAugmentationConfig.train()
        self.two_views = two_views
        self.seed = seed
        self.num_vertices = num_vertices
        self.uint8_pixels = uint8_pixels
        self.epoch = 0
        self._stream = None
        self._stream_key = None

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
        """uint8 RGB crops (..., 3, S, S) -> the network's float32 input, scaled to [0, 1] and normalised by
        `image_mean` and `image_std`: what the transform returns without `uint8_pixels`."""
        std = torch.from_numpy(self.image_std).view(3, 1, 1)
        mean = torch.from_numpy(self.image_mean).view(3, 1, 1)
        # (x / 255 - mean) / std in one pass: x * (1 / (255 std)) - mean / std.
        return torch.addcmul(-mean / std, pixels.to(torch.float32), 1.0 / (255.0 * std))

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
        base_affine = square_box_affine(labels.box, self.image_size, mirror=is_left)

        view = self._make_view(labels, base_affine, sample_view_augmentation(self.augmentation, rng))
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
            view2 = self._make_view(labels, base_affine, sample_view_augmentation(self.augmentation, rng))
            for name in ("pixel_values", "joints_uvd", "vertices_uvd", "joints_valid"):
                sample[name + TWO_VIEW_SUFFIX] = view2[name]
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
            image=_rgb_image(row["image"]),
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

    def _make_view(self, labels: HandLabels, base_affine: np.ndarray, view: ViewAugmentation) -> dict:
        """Crop, colour and targets of one view; `affine` maps original pixels to this view's crop pixels."""
        augmentation = to_homogeneous_affine(augmentation_affine(view, self.image_size))
        affine = (augmentation @ to_homogeneous_affine(base_affine))[:2]
        K_crop, R = camera_after_affine(affine, labels.K)
        joints_xyz = labels.joints_xyz @ R.T
        root_depth = joints_xyz[ROOT_JOINT, 2]
        joints_uvd = self._to_uvd(joints_xyz, K_crop, root_depth)
        if labels.vertices_xyz is None:
            vertices_uvd = np.zeros((self.num_vertices, 3))
        else:
            vertices_uvd = self._to_uvd(labels.vertices_xyz @ R.T, K_crop, root_depth)

        pixels = np.asarray(crop_image(labels.image, affine, self.image_size), dtype=np.float32) / 255.0
        if self.augmentation.has_colour_jitter:
            pixels = jitter_colour(pixels, view)
        if self.uint8_pixels:
            pixels = np.rint(pixels * 255.0).astype(np.uint8)
        else:
            pixels = (pixels - self.image_mean) / self.image_std

        inside = (joints_uvd[:, :2] >= 0).all(axis=1) & (joints_uvd[:, :2] < self.heatmap_size).all(axis=1)
        inside &= (joints_uvd[:, 2] >= 0) & (joints_uvd[:, 2] < self.depth_size)
        return {
            "affine": affine,
            "pixel_values": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
            "joints_xyz": torch.from_numpy(joints_xyz.astype(np.float32)),
            "K_crop": torch.from_numpy(K_crop.astype(np.float32)),
            "joints_uvd": torch.from_numpy(joints_uvd.astype(np.float32)),
            "vertices_uvd": torch.from_numpy(vertices_uvd.astype(np.float32)),
            "joints_valid": torch.from_numpy(inside),
        }

    def _to_uvd(self, points_xyz: np.ndarray, K_crop: np.ndarray, root_depth: float) -> np.ndarray:
        return xyz_to_uvd(
            points_xyz, K_crop, root_depth, self.image_size, self.heatmap_size, self.depth_size, self.depth_range
        )

    def _view2_affine_uv(self, affine1: np.ndarray, affine2: np.ndarray) -> torch.Tensor:
        """(2, 3) map from view-1 uv to view-2 uv, heatmap units: `A2 o A1^-1` conjugated by the heatmap scale."""
        crop_to_heatmap = np.diag([self.heatmap_size / self.image_size] * 2 + [1.0])
        view1_to_view2 = to_homogeneous_affine(affine2) @ to_homogeneous_affine(invert_affine(affine1))
        uv_map = crop_to_heatmap @ view1_to_view2 @ np.linalg.inv(crop_to_heatmap)
        return torch.from_numpy(uv_map[:2].astype(np.float32))


class HandBatchTransform:
    """Columnar batch in, columnar batch out: `HandSampleTransform` over the rows of a `datasets` batch.

    A class rather than a closure so that DataLoader workers started with "spawn" can pickle it.
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


def make_batch_transform(sample_transform: HandSampleTransform, index_column: str | None = None) -> HandBatchTransform:
    """The function for `Dataset.with_transform` / `set_transform`: columnar batch in, columnar batch out.

    Each row of the batch goes through `sample_transform`; the output has one list per field of its samples
    (the row's own columns are dropped). With `index_column` (a column of distinct sample indices, e.g. added
    by `dataset.add_column("index", range(len(dataset)))`), each row draws from
    `sample_transform.generator_for(index)`, which makes a seeded augmentation independent of the DataLoader's
    workers and of the order of the rows.
    """
    return HandBatchTransform(sample_transform, index_column)


def collate_hand_batch(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack the fields of transformed samples along a new first (batch) dimension: a `DataLoader` collate_fn."""
    if not samples:
        raise ValueError("collate_hand_batch needs at least one sample")
    names = list(samples[0])
    batch = {}
    for position, sample in enumerate(samples):
        if sorted(sample) != sorted(names):
            raise ValueError(f"sample {position} has fields {sorted(sample)}, sample 0 has {sorted(names)}")
    for name in names:
        values = [torch.as_tensor(sample[name]) for sample in samples]
        shapes = {tuple(value.shape) for value in values}
        if len(shapes) > 1:
            raise ValueError(f"field {name!r} has different shapes across samples: {sorted(shapes)}")
        batch[name] = torch.stack(values)
    return batch


def _rgb_image(image) -> PIL.Image.Image:
    """The row's image as an RGB PIL image (from PIL in any mode, or a uint8 array (H, W), (H, W, 3) or (H, W, 4))."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise ValueError(
                f"field 'image' as an array must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {image.dtype} "
                f"{image.shape}"
            )
        image = PIL.Image.fromarray(image)
    if not isinstance(image, PIL.Image.Image):
        raise ValueError(f"field 'image' must be a PIL image or a uint8 array, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


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
