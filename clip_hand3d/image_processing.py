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
from transformers.processing_utils import ImagesKwargs

from clip_hand3d.data.transforms import IMAGENET_MEAN, IMAGENET_STD, crop_image
from clip_hand3d.geometry import (
    CROP_MARGIN,
    apply_affine,
    camera_after_affine,
    invert_affine,
    root_depth_from_bone_length,
    square_box_affine,
    uvd_to_xyz,
)
from clip_hand3d.modeling.configuration_clip_hand3d import CLIPHand3DConfig
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, REFERENCE_BONE, ROOT_JOINT

# Mean length (metres) of FreiHAND's reference bone, middle MCP -> middle PIP.
DEFAULT_BONE_LENGTH = 0.0283
# Focal length (pixels of the crop) of the virtual camera used when no intrinsics are given.
DEFAULT_FOCAL_LENGTH = 1000.0
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


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


def _pil_to_array(image: PIL.Image.Image) -> np.ndarray:
    """A PIL image -> an (H, W, C) or (H, W) numpy array that `_array_to_rgb` understands."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit greyscale (PNG); mode "I" holds it as int32.
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image)
    if image.mode in TRANSPARENT_MODES or image.has_transparency_data:
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def _array_to_unit_float(array: np.ndarray, index: int) -> np.ndarray:
    """uint8, uint16 or float [0, 1] values -> float32 in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"image {index} holds NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"image {index}: float images must be in [0, 1], got values in [{array.min()}, {array.max()}]"
            )
        return array.astype(np.float32)
    raise ValueError(f"image {index}: pixel type must be uint8, uint16 or float in [0, 1], got {array.dtype}")


def _array_to_rgb(array: np.ndarray, index: int) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> (H, W, 3) uint8 RGB; alpha composites on black."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"image {index} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (channels last), "
            f"got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image {index} is empty (shape {array.shape})")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return array
    values = _array_to_unit_float(array, index)
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[2] == 4:
        values = values[..., :3] * values[..., 3:]
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.round(values * 255).astype(np.uint8)


def image_to_rgb(image: PIL.Image.Image | np.ndarray, index: int = 0) -> np.ndarray:
    """Any supported image -> (H, W, 3) uint8 RGB array.

    PIL images of any mode (alpha composited on black, greyscale repeated, 16-bit scaled to 8-bit) or numpy
    arrays (H, W), (H, W, 1), (H, W, 3), (H, W, 4) of uint8, uint16 or float in [0, 1]. `index` names the
    sample in error messages.
    """
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"image {index} is empty (size {image.size})")
        return _array_to_rgb(_pil_to_array(image), index)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, index)
    raise ValueError(
        f"image {index} must be a PIL image or a numpy array (H, W[, C]), got {type(image).__module__}."
        f"{type(image).__name__}"
    )


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
        crop_margin: float = CROP_MARGIN,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
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

    def normalize_crop(self, crop: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 crop -> (3, S, S) float32 `(pixel / 255 - mean) / std`."""
        values = crop.astype(np.float32) / 255
        values = (values - np.asarray(self.image_mean, dtype=np.float32)) / np.asarray(self.image_std, np.float32)
        return np.ascontiguousarray(values.transpose(2, 0, 1))

    def preprocess(self, images, boxes=None, is_left=None, return_tensors: str | None = "pt") -> BatchFeature:
        """Crop, mirror and normalise a batch of hand images.

        Args:
            images: a PIL image or numpy array, or a list of them (see `image_to_rgb` for the formats).
            boxes: hand boxes (x1, y1, x2, y2) in original pixels: None, one box for a single image, or one per
                image (an entry may be None: whole image).
            is_left: None (all right hands), or one bool per image; left hands are mirrored.
            return_tensors: "pt" for torch tensors, "np" or None for numpy arrays.

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
            rgb = image_to_rgb(image, index)
            height, width = rgb.shape[:2]
            affine = self.crop_transform(box, height, width, bool(left))
            crop = np.asarray(crop_image(PIL.Image.fromarray(rgb), affine, self.image_size))
            pixel_values.append(self.normalize_crop(crop))
            transforms.append(affine)
            sizes.append((height, width))
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
        depth = root_depth_from_bone_length(joints_uvd, K_crop, REFERENCE_BONE, length, *self._uvd_space)
        bone = uvd_to_xyz(joints_uvd[list(REFERENCE_BONE)], K_crop, depth, *self._uvd_space)
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
        joints_cam = uvd_to_xyz(joints_uvd, K_crop, root_depth, *self._uvd_space) @ R
        vertices_cam = uvd_to_xyz(vertices_uvd, K_crop, root_depth, *self._uvd_space) @ R
        crop_pixels = joints_uvd[:, :2] * (self.image_size / self.heatmap_size)
        return {
            "keypoints_2d": apply_affine(crop_pixels, invert_affine(crop_transform)),
            "joints_3d": joints_cam - joints_cam[ROOT_JOINT],
            "vertices_3d": vertices_cam - joints_cam[ROOT_JOINT],
            "joints_cam": joints_cam,
            "vertices_cam": vertices_cam,
        }

    @property
    def _uvd_space(self) -> tuple[int, int, int, float]:
        """(image_size, heatmap_size, depth_size, depth_range): the trailing arguments of the uvd functions."""
        return self.image_size, self.heatmap_size, self.depth_size, self.depth_range


AutoImageProcessor.register(CLIPHand3DConfig, image_processor_classes={"pil": CLIPHand3DImageProcessor}, exist_ok=True)
