"""Random augmentation of a training sample: a similarity of the crop (rotation, scale, shift), colour jitter and,
optionally, image degradations (an occluding patch, Gaussian blur, pixel noise) as a camera in the wild gives them.

`augmentation_affine` is applied on top of the image processor's crop transform, so an augmented crop is the
evaluation crop moved by one more 2D similarity (see `clip_hand3d.training.transforms`).
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from clip_hand3d.validation import check_probability

# ITU-R 601-2 luma weights (the grey level of an RGB colour) and the RGB -> YIQ matrix whose first row they are.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
YIQ_FROM_RGB = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


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
        occlusion_probability: probability of a rectangle of one random colour in front of the crop (the labels
            are kept: the network learns to place hidden joints)...
        occlusion_size: ...its width and height, each drawn uniformly in this range of fractions of the crop's
            side, its centre uniformly in the middle 60 % of the crop (where the hand is).
        blur_probability: probability of a Gaussian blur (defocus)...
        blur_sigma: ...of a standard deviation drawn uniformly up to this fraction of the crop's side (0.008:
            1.8 px at 224 px).
        noise_probability: probability of Gaussian pixel noise...
        noise_std: ...of a standard deviation drawn uniformly up to this (pixels in [0, 1]).
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
    occlusion_probability: float = 0.0
    occlusion_size: tuple[float, float] = (0.15, 0.4)
    blur_probability: float = 0.0
    blur_sigma: float = 0.008
    noise_probability: float = 0.0
    noise_std: float = 0.04

    def __post_init__(self):
        self.scale_range = tuple(float(value) for value in self.scale_range)
        self.occlusion_size = tuple(float(value) for value in self.occlusion_size)
        for name in (
            "rotation_degrees",
            "shift_fraction",
            "brightness",
            "contrast",
            "saturation",
            "hue",
            "blur_sigma",
            "noise_std",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"HandAugmentationConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) > 1:
                raise ValueError(f"HandAugmentationConfig.{name} must be <= 1, got {getattr(self, name)}")
        if self.hue > 0.5:
            raise ValueError(f"HandAugmentationConfig.hue must be <= 0.5 (half a turn), got {self.hue}")
        for name in (
            "rotation_probability",
            "flip_probability",
            "occlusion_probability",
            "blur_probability",
            "noise_probability",
        ):
            check_probability(f"HandAugmentationConfig.{name}", getattr(self, name))
        if len(self.occlusion_size) != 2 or not 0 < self.occlusion_size[0] <= self.occlusion_size[1] <= 1:
            raise ValueError(
                "HandAugmentationConfig.occlusion_size must be (low, high) with 0 < low <= high <= 1, got "
                f"{self.occlusion_size}"
            )
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(
                f"HandAugmentationConfig.scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}"
            )

    @classmethod
    def train(cls, degradations: bool = False) -> "HandAugmentationConfig":
        """The training preset: the defaults (geometry and colour jitter); with `degradations`, also an occluding
        patch, blur and noise, each on 30 % of the samples."""
        if not degradations:
            return cls()
        return cls(occlusion_probability=0.3, blur_probability=0.3, noise_probability=0.3)

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
    def changes_pixels(self) -> bool:
        """Whether colour jitter (any of brightness, contrast, saturation and hue) or a degradation is on."""
        colour = self.brightness > 0 or self.contrast > 0 or self.saturation > 0 or self.hue > 0
        degradation = self.occlusion_probability > 0 or self.blur_probability > 0 or self.noise_probability > 0
        return colour or degradation


@dataclass(frozen=True)
class ViewAugmentation:
    """One draw of the augmentation of one view.

    Attributes:
        rotation_degrees: rotation of the image about the crop centre, degrees.
        scale: factor on the crop's side.
        shift: (x, y) shift of the hand in the crop, fractions of the crop's side.
        brightness, contrast, saturation: colour factors (1 leaves the colour alone).
        hue: hue rotation, fraction of a full turn.
        occlusion_box: the occluding rectangle (x0, y0, x1, y1), fractions of the crop's side; None: none.
        occlusion_color: its RGB colour in [0, 1].
        blur_sigma: standard deviation of the Gaussian blur, fraction of the crop's side (0: none).
        noise_std: standard deviation of the pixel noise, pixels in [0, 1] (0: none)...
        noise_seed: ...drawn from a generator of this seed.
    """

    rotation_degrees: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    occlusion_box: tuple[float, float, float, float] | None = None
    occlusion_color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    noise_seed: int = 0


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
    occlude = rng.random() < config.occlusion_probability
    occlusion_half_size = rng.uniform(*config.occlusion_size, size=2) / 2
    occlusion_centre = rng.uniform(0.2, 0.8, size=2)
    occlusion_color = rng.random(3)
    blur = rng.random() < config.blur_probability
    blur_sigma = rng.uniform(0.0, config.blur_sigma)
    noise = rng.random() < config.noise_probability
    noise_std = rng.uniform(0.0, config.noise_std)
    noise_seed = int(rng.integers(2**31))
    occlusion_box = np.concatenate([occlusion_centre - occlusion_half_size, occlusion_centre + occlusion_half_size])
    return ViewAugmentation(
        rotation_degrees=float(angle) if rotate else 0.0,
        scale=float(scale),
        shift=(float(shift[0]), float(shift[1])),
        brightness=float(brightness),
        contrast=float(contrast),
        saturation=float(saturation),
        hue=float(hue),
        occlusion_box=tuple(float(value) for value in occlusion_box) if occlude else None,
        occlusion_color=tuple(float(value) for value in occlusion_color),
        blur_sigma=float(blur_sigma) if blur else 0.0,
        noise_std=float(noise_std) if noise else 0.0,
        noise_seed=noise_seed,
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


def degrade(pixels: np.ndarray, view: ViewAugmentation) -> np.ndarray:
    """Apply the view's occluding rectangle, blur and noise, in that order (what stands in front of the hand is
    blurred with it, the sensor's noise comes last), to RGB `pixels` (S, S, 3) in [0, 1]; clipped to [0, 1]."""
    size = pixels.shape[0]
    pixels = pixels.astype(np.float32, copy=True)
    if view.occlusion_box is not None:
        x0, y0, x1, y1 = (int(round(np.clip(value, 0.0, 1.0) * size)) for value in view.occlusion_box)
        pixels[y0:y1, x0:x1] = np.asarray(view.occlusion_color, dtype=np.float32)
    if view.blur_sigma > 0:
        pixels = gaussian_filter(pixels, sigma=(view.blur_sigma * size, view.blur_sigma * size, 0), mode="nearest")
    if view.noise_std > 0:
        noise = np.random.default_rng(view.noise_seed).normal(0.0, view.noise_std, size=pixels.shape)
        pixels = pixels + noise.astype(np.float32)
    return np.clip(pixels, 0.0, 1.0)


def augment_pixels(crop: np.ndarray, view: ViewAugmentation) -> np.ndarray:
    """A crop (S, S, 3) uint8 -> float32 in [0, 1], colour-jittered (`jitter_colour`) then degraded (`degrade`)."""
    return degrade(jitter_colour(crop.astype(np.float32) / 255, view), view)
