"""Image processor of CLIP-Hand3D: hand crops in, metric 3D hands out.

`preprocess` turns images (PIL or numpy, any mode and size) and optional hand boxes into the network's input:
a square crop around each box (side `crop_margin` x the box's longer side; the whole image when there is no
box), mirrored for left hands so that the network always sees a right hand, resized to `image_size` and
normalised. It keeps each crop's 2D similarity (original pixels -> crop pixels).

`post_process` undoes all of it for the network's uvd predictions (see `clip_hand3d.geometry`): 2D keypoints in
the original image's pixels, root-relative joints and vertices in metres in the original camera frame, and
camera-frame coordinates when the intrinsics and the hand's depth or size are known.

Pixel coordinates follow `clip_hand3d.geometry`: continuous, pixel centres at integers.
"""

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import PIL.Image
import torch
from transformers import AutoImageProcessor
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.processing_utils import ImagesKwargs

from clip_hand3d.geometry import (
    UVDSpace,
    apply_affine,
    camera_after_affine,
    invert_affine,
    square_box_affine,
)
from clip_hand3d.image_utils import crop_image, rgb_image
from clip_hand3d.modeling.configuration_clip_hand3d import CLIPHand3DConfig
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, REFERENCE_BONE, ROOT_JOINT

# The crop's side over the longer side of the hand box.
DEFAULT_CROP_MARGIN = 1.3
# Mean length (metres) of FreiHAND's reference bone, middle MCP -> middle PIP.
DEFAULT_BONE_LENGTH = 0.0283
# Focal length (pixels of the crop) of the virtual camera used when no intrinsics are given.
DEFAULT_FOCAL_LENGTH = 1000.0


class CLIPHand3DImageProcessorKwargs(ImagesKwargs, total=False):
    """The attributes `from_pretrained(..., **kwargs)` may override."""

    image_size: int
    crop_margin: float
    heatmap_size: int
    depth_size: int
    depth_range: float
    default_bone_length: float
    default_focal_length: float


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_channel_values(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(value) for value in values)
    if len(values) != 3:
        raise ValueError(f"{name} needs one value per RGB channel, got {values}")
    return values


def _as_image_list(images) -> list:
    if isinstance(images, PIL.Image.Image | np.ndarray):
        return [images]
    if isinstance(images, list | tuple):
        if len(images) == 0:
            raise ValueError("images is an empty list")
        return list(images)
    raise ValueError(
        f"images must be a PIL image, a numpy array or a list of them, got {type(images).__module__}."
        f"{type(images).__name__}"
    )


def _box_list(boxes, batch_size: int) -> list[np.ndarray | None]:
    """None, one (4,) box for a single image, or B boxes (each (4,) or None) -> B entries (x1, y1, x2, y2)."""
    if boxes is None:
        return [None] * batch_size
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    if not isinstance(boxes, list | tuple | np.ndarray) or (isinstance(boxes, np.ndarray) and boxes.ndim == 0):
        raise ValueError(f"boxes must be None, one box (x1, y1, x2, y2) or a list of boxes, got {boxes!r}")
    if batch_size == 1 and len(boxes) == 4 and all(np.ndim(value) == 0 for value in boxes):
        boxes = [boxes]
    if len(boxes) != batch_size:
        raise ValueError(f"got {len(boxes)} boxes for {batch_size} images")
    checked = []
    for index, box in enumerate(boxes):
        if box is None:
            checked.append(None)
            continue
        box = np.asarray(box, dtype=np.float64)
        if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(
                f"box {index} must be finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box.tolist()}"
            )
        checked.append(box)
    return checked


def _is_left_array(is_left, batch_size: int) -> np.ndarray:
    if is_left is None:
        return np.zeros(batch_size, dtype=bool)
    if isinstance(is_left, torch.Tensor):
        is_left = is_left.detach().cpu().numpy()
    flags = np.atleast_1d(np.asarray(is_left))
    if flags.ndim != 1 or len(flags) != batch_size:
        raise ValueError(f"is_left needs one flag per image ({batch_size}), got shape {flags.shape}")
    if flags.dtype != bool and not np.isin(flags, (0, 1)).all():
        raise ValueError(f"is_left must hold booleans, got {flags.tolist()}")
    return flags.astype(bool)


def _to_numpy(value, name: str) -> np.ndarray:
    """A tensor or array-like -> float64 numpy array."""
    if value is None:
        raise ValueError(f"{name} is missing")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _per_sample(value, name: str, batch_size: int, sample_shape: tuple[int, ...]) -> np.ndarray | None:
    """None, one value for all samples, or one per sample -> (B, *sample_shape) float64, finite."""
    if value is None:
        return None
    array = _to_numpy(value, name)
    if array.shape == sample_shape:
        array = np.broadcast_to(array, (batch_size, *sample_shape))
    if array.shape != (batch_size, *sample_shape):
        raise ValueError(
            f"{name} must have shape {sample_shape} or {(batch_size, *sample_shape)}, got {tuple(array.shape)}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _read_outputs(outputs, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(joints_uvd (B, 21, 3), vertices_uvd (B, V, 3), faces (F, 3)) of a model output, checked against B."""
    joints_uvd = _to_numpy(getattr(outputs, "joints_uvd", None), "outputs.joints_uvd")
    vertices_uvd = _to_numpy(getattr(outputs, "vertices_uvd", None), "outputs.vertices_uvd")
    faces = getattr(outputs, "faces", None)
    if faces is None:
        raise ValueError("outputs.faces is missing")
    faces = faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)
    if joints_uvd.shape != (batch_size, NUM_JOINTS, 3):
        raise ValueError(
            f"outputs.joints_uvd must have shape ({batch_size}, {NUM_JOINTS}, 3) to match the inputs, "
            f"got {joints_uvd.shape}"
        )
    if vertices_uvd.ndim != 3 or vertices_uvd.shape[0] != batch_size or vertices_uvd.shape[2] != 3:
        raise ValueError(f"outputs.vertices_uvd must have shape ({batch_size}, V, 3), got {vertices_uvd.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"outputs.faces must have shape (F, 3), got {faces.shape}")
    if not (np.isfinite(joints_uvd).all() and np.isfinite(vertices_uvd).all()):
        raise ValueError("outputs.joints_uvd or outputs.vertices_uvd holds NaN or infinite values")
    return joints_uvd, vertices_uvd, faces


class CLIPHand3DImageProcessor(BaseImageProcessor):
    r"""
    Crops, mirrors and normalises hand images for [`CLIPHand3DModel`] and turns its uvd predictions into pixels
    and metres.

    Args:
        image_size (`int`): side of the square network input, pixels.
        crop_margin (`float`): the crop's side is `crop_margin` x the longer side of the hand box.
        image_mean (`tuple[float]`), image_std (`tuple[float]`): RGB normalisation of pixel values in [0, 1].
        heatmap_size (`int`): u, v resolution of the model's uvd space.
        depth_size (`int`): number of depth bins of the uvd space.
        depth_range (`float`): metres spanned by the depth bins, centred on the root joint.
        default_bone_length (`float`): metres of the reference bone (middle MCP -> PIP) assumed when neither the
            root depth nor the bone length is given to `post_process`.
        default_focal_length (`float`): focal length (pixels of the `image_size` crop) of the virtual camera used
            by `post_process` when no intrinsics are given.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = CLIPHand3DImageProcessorKwargs

    def __init__(
        self,
        image_size: int = 224,
        crop_margin: float = DEFAULT_CROP_MARGIN,
        image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
        heatmap_size: int = 56,
        depth_size: int = 56,
        depth_range: float = 0.3,
        default_bone_length: float = DEFAULT_BONE_LENGTH,
        default_focal_length: float = DEFAULT_FOCAL_LENGTH,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("image_size", image_size), ("heatmap_size", heatmap_size), ("depth_size", depth_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (
            ("crop_margin", crop_margin),
            ("depth_range", depth_range),
            ("default_bone_length", default_bone_length),
            ("default_focal_length", default_focal_length),
        ):
            _check_positive(name, value)
        image_std = _check_channel_values("image_std", image_std)
        if min(image_std) <= 0:
            raise ValueError(f"image_std must be positive, got {image_std}")
        self.image_size = int(image_size)
        self.crop_margin = float(crop_margin)
        self.image_mean = _check_channel_values("image_mean", image_mean)
        self.image_std = image_std
        self.heatmap_size = int(heatmap_size)
        self.depth_size = int(depth_size)
        self.depth_range = float(depth_range)
        self.default_bone_length = float(default_bone_length)
        self.default_focal_length = float(default_focal_length)

    def crop_transform(self, box: np.ndarray | None, height: int, width: int, is_left: bool) -> np.ndarray:
        """(2, 3) similarity from original pixels to crop pixels.

        With a box: `square_box_affine(box, image_size, crop_margin, mirror=is_left)`. Without: the square of
        side max(height, width) around the image centre (margin 1), i.e. the box (-0.5, -0.5, width - 0.5,
        height - 0.5) that the pixels cover.
        """
        if box is None:
            return square_box_affine((-0.5, -0.5, width - 0.5, height - 0.5), self.image_size, 1.0, is_left)
        return square_box_affine(box, self.image_size, self.crop_margin, is_left)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """RGB crops, channels first (..., 3, S, S), as uint8 or as floats in [0, 1] -> the network's float32
        input `(value - image_mean) / image_std`, value in [0, 1]."""
        std = np.asarray(self.image_std, dtype=np.float32)[:, None, None]
        offset = -np.asarray(self.image_mean, dtype=np.float32)[:, None, None] / std
        scale = 1 / (255 * std) if pixels.dtype == np.uint8 else 1 / std
        return pixels * scale + offset

    def crop(self, image: PIL.Image.Image, affine: np.ndarray) -> np.ndarray:
        """The (S, S, 3) uint8 crop of an RGB PIL `image` through `affine` (original pixels -> crop pixels)."""
        return np.asarray(crop_image(image, affine, self.image_size))

    def preprocess(
        self,
        images,
        boxes=None,
        is_left=None,
        return_tensors: str | None = "pt",
        max_image_pixels: int | None = None,
    ) -> BatchFeature:
        """Crop, mirror and normalise a batch of hand images.

        Args:
            images: a PIL image or numpy array, or a list of them (see `image_to_rgb` for the formats).
            boxes: hand boxes (x1, y1, x2, y2) in original pixels: None, one box for a single image, or one per
                image (an entry may be None: whole image).
            is_left: None (all right hands), or one bool per image; left hands are mirrored.
            return_tensors: "pt" for torch tensors, "np" or None for numpy arrays.
            max_image_pixels: the largest image accepted, pixels (None: `image_utils.MAX_IMAGE_PIXELS`); EXIF
                orientation is applied and sizes are checked by `image_utils.rgb_image`.

        Returns:
            BatchFeature with `pixel_values` (B, 3, S, S) float32, `crop_transforms` (B, 2, 3) float32 (original
            pixels -> crop pixels), `is_left` (B,) bool and `original_sizes` (B, 2) int64 (height, width).
        """
        images = _as_image_list(images)
        batch_size = len(images)
        box_list = _box_list(boxes, batch_size)
        flags = _is_left_array(is_left, batch_size)
        pixel_values, transforms, sizes = [], [], []
        for index, (image, box, left) in enumerate(zip(images, box_list, flags, strict=True)):
            rgb = rgb_image(image, f"image {index}", max_image_pixels)
            affine = self.crop_transform(box, rgb.height, rgb.width, bool(left))
            crop = self.crop(rgb, affine)
            pixel_values.append(self.normalize(crop.transpose(2, 0, 1)))
            transforms.append(affine)
            sizes.append((rgb.height, rgb.width))
        data = {
            "pixel_values": np.stack(pixel_values),
            "crop_transforms": np.stack(transforms).astype(np.float32),
            "is_left": flags,
            "original_sizes": np.asarray(sizes, dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def crop_camera(
        self, crop_transform: np.ndarray, is_left: bool, K: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K_crop, R) of one crop: points in the crop camera are `R @ X`, X in the original camera.

        With intrinsics `K` of the original image: `camera_after_affine(crop_transform, K)`. Without: a virtual
        crop camera with focal length `default_focal_length` and the principal point at the crop centre, and
        R the mirror diag(-1, 1, 1) for left hands (identity otherwise).
        """
        if K is not None:
            return camera_after_affine(crop_transform, K)
        centre = self.image_size / 2
        focal = self.default_focal_length
        K_crop = np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])
        R = np.diag([-1.0, 1.0, 1.0]) if is_left else np.eye(3)
        return K_crop, R

    def post_process(self, outputs, inputs: Mapping, K=None, root_depth=None, bone_length=None) -> list[dict]:
        """The model's uvd predictions -> per-sample numpy results in original pixels and metres.

        Args:
            outputs: the model output (or any object) with `joints_uvd` (B, 21, 3), `vertices_uvd` (B, V, 3) and
                `faces` (F, 3).
            inputs: what `preprocess` returned for the batch (`crop_transforms`, `is_left`).
            K: intrinsics of the original images, (3, 3) for all or (B, 3, 3), in pixels.
            root_depth: metres, scalar or (B,): the z of the middle depth bin, i.e. of the wrist (the root).
            bone_length: metres of the reference bone (middle MCP -> PIP), scalar or (B,); used to solve the
                root depth when `root_depth` is None (default: `default_bone_length`).

        Returns:
            One dict per sample: `keypoints_2d` (21, 2) original pixels; `joints_3d` (21, 3) and `vertices_3d`
            (V, 3) in metres relative to the wrist, in the original camera frame; `faces` (F, 3); and, when K is
            given with `root_depth` or `bone_length`, `joints_cam` (21, 3) and `vertices_cam` (V, 3) in the
            camera frame, metres.
        """
        if "crop_transforms" not in inputs or "is_left" not in inputs:
            raise ValueError("inputs must hold 'crop_transforms' and 'is_left' as returned by the image processor")
        crop_transforms = _to_numpy(inputs["crop_transforms"], "inputs['crop_transforms']")
        if crop_transforms.ndim != 3 or crop_transforms.shape[1:] != (2, 3):
            raise ValueError(f"inputs['crop_transforms'] must have shape (B, 2, 3), got {crop_transforms.shape}")
        batch_size = len(crop_transforms)
        flags = _is_left_array(inputs["is_left"], batch_size)
        joints_uvd, vertices_uvd, faces = _read_outputs(outputs, batch_size)
        K = _per_sample(K, "K", batch_size, (3, 3))
        root_depth = _per_sample(root_depth, "root_depth", batch_size, ())
        bone_length = _per_sample(bone_length, "bone_length", batch_size, ())
        for name, values in (("root_depth", root_depth), ("bone_length", bone_length)):
            if values is not None and (values <= 0).any():
                raise ValueError(f"{name} must be positive, got {values.tolist()}")
        with_camera_frame = K is not None and (root_depth is not None or bone_length is not None)
        results = []
        for index in range(batch_size):
            K_crop, R = self.crop_camera(crop_transforms[index], bool(flags[index]), None if K is None else K[index])
            if root_depth is not None:
                depth = float(root_depth[index])
            else:
                length = self.default_bone_length if bone_length is None else float(bone_length[index])
                depth = self._root_depth_from_bone_length(joints_uvd[index], K_crop, length, index)
            result = self._sample_results(
                joints_uvd[index], vertices_uvd[index], crop_transforms[index], K_crop, R, depth
            )
            result["faces"] = faces
            if not with_camera_frame:
                del result["joints_cam"], result["vertices_cam"]
            results.append(result)
        return results

    def _root_depth_from_bone_length(
        self, joints_uvd: np.ndarray, K_crop: np.ndarray, length: float, index: int
    ) -> float:
        """Root depth (metres) that gives the reference bone `length` metres; warns when no depth can.

        The bone's depth difference is metric in uvd space, so a bone predicted steeper than `length` stays
        longer than `length` at every root depth; the nearest root depth the depth bins allow is then used.
        """
        depth = self.uvd_space.root_depth_from_bone_length(joints_uvd, K_crop, REFERENCE_BONE, length)
        bone = self.uvd_space.uvd_to_xyz(joints_uvd[list(REFERENCE_BONE)], K_crop, depth)
        achieved = float(np.linalg.norm(bone[0] - bone[1]))
        if abs(achieved - length) > 1e-6 * length:
            depth_difference = abs(bone[0, 2] - bone[1, 2])
            warnings.warn(
                f"sample {index}: the reference bone cannot be {length} m long, its predicted depth difference "
                f"alone is {depth_difference:.4f} m; using root depth {depth:.4f} m, where it is {achieved:.4f} m",
                stacklevel=3,
            )
        return depth

    def _sample_results(
        self,
        joints_uvd: np.ndarray,
        vertices_uvd: np.ndarray,
        crop_transform: np.ndarray,
        K_crop: np.ndarray,
        R: np.ndarray,
        root_depth: float,
    ) -> dict[str, np.ndarray]:
        """Keypoints in original pixels and joints / vertices in the original camera frame (metres) of one sample."""
        # Crop-camera points are R @ X; as rows, X = crop_point @ R.
        joints_cam = self.uvd_space.uvd_to_xyz(joints_uvd, K_crop, root_depth) @ R
        vertices_cam = self.uvd_space.uvd_to_xyz(vertices_uvd, K_crop, root_depth) @ R
        crop_pixels = joints_uvd[:, :2] / self.uvd_space.heatmap_per_pixel
        return {
            "keypoints_2d": apply_affine(crop_pixels, invert_affine(crop_transform)),
            "joints_3d": joints_cam - joints_cam[ROOT_JOINT],
            "vertices_3d": vertices_cam - joints_cam[ROOT_JOINT],
            "joints_cam": joints_cam,
            "vertices_cam": vertices_cam,
        }

    @property
    def uvd_space(self) -> UVDSpace:
        """The uvd space of the crops and of the model's predictions."""
        return UVDSpace(self.image_size, self.heatmap_size, self.depth_size, self.depth_range)


AutoImageProcessor.register(CLIPHand3DConfig, image_processor_classes={"pil": CLIPHand3DImageProcessor}, exist_ok=True)
