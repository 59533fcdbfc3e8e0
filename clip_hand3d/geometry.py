"""Camera geometry shared by the data pipeline and post-processing.

Conventions (see DESIGN.md): camera frame as OpenCV (x right, y down, z away from the camera), metres.
Pixel coordinates are continuous with pixel centres at integers (OpenCV): the top-left pixel covers
[-0.5, 0.5] x [-0.5, 0.5].

The model predicts joints and vertices in *uvd space* of its input crop (`UVDSpace`):
- u, v: crop pixels scaled to the heatmap, `u = x_crop * heatmap_size / image_size`, in [0, heatmap_size);
- d: depth relative to the root joint (the wrist) in bins, `d = (z - z_root) / depth_range * depth_size +
  depth_size / 2`, so the root sits in the middle bin and the bins span `depth_range` metres.

Every augmentation and crop is a 2D similarity `A` (rotation, uniform scale, translation, optional
mirror) of the image. `camera_after_affine` turns it into the matching camera: points move by a 3D
rotation/mirror `R` about the optical axis and `K' = A K R^T`, so `project(R X, K') = A project(X, K)`
exactly. The labels therefore move by exactly the transform that moved the pixels.
"""

from dataclasses import dataclass

import numpy as np


def to_homogeneous_affine(affine: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affine -> (..., 3, 3) matrix with last row (0, 0, 1)."""
    affine = np.asarray(affine, dtype=np.float64)
    bottom = np.zeros(affine.shape[:-2] + (1, 3))
    bottom[..., 0, 2] = 1.0
    return np.concatenate([affine, bottom], axis=-2)


def apply_affine(points_2d: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points (..., N, 2); returns (..., N, 2)."""
    affine = np.asarray(affine, dtype=np.float64)
    return points_2d @ affine[..., :2, :2].swapaxes(-1, -2) + affine[..., None, :2, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (..., 2, 3) affine."""
    return np.linalg.inv(to_homogeneous_affine(affine))[..., :2, :]


def square_box_affine(box: np.ndarray, output_size: int, margin: float, mirror: bool = False) -> np.ndarray:
    """(2, 3) affine mapping original pixels to a square crop of side `output_size` around `box`.

    Args:
        box: (x1, y1, x2, y2) in original pixels.
        output_size: side of the crop in pixels.
        margin: the crop's side is `margin * max(box width, box height)`.
        mirror: flip the crop left-right (used for left hands, so the network always sees a right hand).
    """
    x1, y1, x2, y2 = (float(value) for value in box)
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
        raise ValueError(f"box must be finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {tuple(box)}")
    side = margin * max(x2 - x1, y2 - y1)
    scale = output_size / side
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    sign = -1.0 if mirror else 1.0
    return np.array(
        [
            [sign * scale, 0.0, output_size / 2 - sign * scale * centre_x],
            [0.0, scale, output_size / 2 - scale * centre_y],
        ]
    )


def project(points_xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Perspective projection of camera-frame points (..., N, 3) with intrinsics (..., 3, 3) to pixels (..., N, 2)."""
    homogeneous = points_xyz @ np.asarray(K, dtype=np.float64).swapaxes(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def camera_after_affine(affine: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The camera that sees the image transformed by the 2D similarity `affine`.

    Args:
        affine: (2, 3) similarity (rotation, uniform scale, translation, optional mirror).
        K: (3, 3) intrinsics of the original image.

    Returns:
        (K_new, R): points in the new camera frame are `R @ X`, and `project(R X, K_new)` equals
        `affine` applied to `project(X, K)`. `R` is a rotation about the optical axis, times
        diag(-1, 1, 1) when the affine mirrors.
    """
    linear = np.asarray(affine, dtype=np.float64)[:2, :2]
    scale = np.sqrt(abs(np.linalg.det(linear)))
    if scale == 0:
        raise ValueError("affine is singular")
    mirror = np.linalg.det(linear) < 0
    rotation_2d = linear / scale
    if mirror:
        rotation_2d = rotation_2d @ np.diag([-1.0, 1.0])
    R = np.eye(3)
    R[:2, :2] = rotation_2d
    if mirror:
        R = R @ np.diag([-1.0, 1.0, 1.0])
    K_new = to_homogeneous_affine(affine) @ np.asarray(K, dtype=np.float64) @ R.T
    return K_new, R


@dataclass(frozen=True)
class UVDSpace:
    """The model's coordinate space of one crop (see the module docstring).

    Attributes:
        image_size: side of the square crop, pixels.
        heatmap_size: u, v resolution, heatmap pixels (`u = x_crop * heatmap_size / image_size`).
        depth_size: number of depth bins of d.
        depth_range: metres spanned by the depth bins, centred on the root joint.
    """

    image_size: int
    heatmap_size: int
    depth_size: int
    depth_range: float

    @classmethod
    def from_config(cls, config) -> "UVDSpace":
        """The uvd space of a `CLIPHand3DConfig` (or anything with the four attributes)."""
        return cls(config.image_size, config.heatmap_size, config.depth_size, config.depth_range)

    @property
    def heatmap_per_pixel(self) -> float:
        """Heatmap units per crop pixel."""
        return self.heatmap_size / self.image_size

    def xyz_to_uvd(self, points_xyz: np.ndarray, K_crop: np.ndarray, root_depth: float) -> np.ndarray:
        """Camera-frame points (..., N, 3) in metres -> uvd (..., N, 3) of the crop whose intrinsics are `K_crop`.

        `root_depth` is the z of the root joint in metres.
        """
        uv = project(points_xyz, K_crop) * self.heatmap_per_pixel
        d = (points_xyz[..., 2] - root_depth) / self.depth_range * self.depth_size + self.depth_size / 2
        return np.concatenate([uv, d[..., None]], axis=-1)

    def uvd_to_xyz(self, uvd: np.ndarray, K_crop: np.ndarray, root_depth: float) -> np.ndarray:
        """Inverse of `xyz_to_uvd`: uvd (N, 3) -> camera-frame points (N, 3) in metres, given the root's depth."""
        uvd = np.asarray(uvd, dtype=np.float64)
        pixels = uvd[..., :2] / self.heatmap_per_pixel
        z = root_depth + (uvd[..., 2] - self.depth_size / 2) / self.depth_size * self.depth_range
        homogeneous = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
        rays = homogeneous @ np.linalg.inv(np.asarray(K_crop, dtype=np.float64)).T
        return rays / rays[..., 2:3] * z[..., None]

    def contains(self, uvd: np.ndarray) -> np.ndarray:
        """(..., N) bool: whether u, v lie in [0, heatmap_size) and d in [0, depth_size)."""
        inside = ((uvd[..., :2] >= 0) & (uvd[..., :2] < self.heatmap_size)).all(axis=-1)
        return inside & (uvd[..., 2] >= 0) & (uvd[..., 2] < self.depth_size)

    def root_depth_from_bone_length(
        self, uvd: np.ndarray, K_crop: np.ndarray, bone: tuple[int, int], bone_length: float
    ) -> float:
        """The root depth (metres) at which the joints `uvd` (21, 3) give `bone` the metric length `bone_length`.

        A joint at root depth z sits at X = r (z + o): r its ray scaled to unit depth, o its depth offset from the
        root. The bone is then p z + q (p = r_a - r_b, q = r_a o_a - r_b o_b), and |p z + q| = bone_length is a
        quadratic in z; its larger root is the depth in front of the camera, where the length grows with z. Depths
        are kept at least `depth_range / 2` + 1 mm, where every joint the depth bins can hold is in front of the
        camera; a bone that is longer than `bone_length` at every depth (its depth offset alone is longer) gets
        that nearest depth.
        """
        near = self.depth_range / 2 + 1e-3
        at_unit_depth = self.uvd_to_xyz(uvd[list(bone)], K_crop, root_depth=1.0)
        rays = at_unit_depth / at_unit_depth[:, 2:3]
        offsets = at_unit_depth[:, 2] - 1.0
        p = rays[0] - rays[1]
        q = rays[0] * offsets[0] - rays[1] * offsets[1]
        a, half_b, c = p @ p, p @ q, q @ q - bone_length**2
        discriminant = half_b**2 - a * c
        if a <= 0 or discriminant < 0:
            return near
        return max(near, float((-half_b + np.sqrt(discriminant)) / a))
