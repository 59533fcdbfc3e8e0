"""The synthetic sample's camera: random pinhole intrinsics and the hand's placement in front of it."""

import numpy as np

from clip_hand3d.geometry import project

FOCAL_RANGE = (0.8, 1.6)  # focal length over the image side
CAMERA_DISTANCE_RANGE = (0.3, 0.8)  # metres from the camera to the centre of the hand's bounding box
BOX_FRACTION_RANGE = (0.35, 0.9)  # longer side of the hand box over the image side
PRINCIPAL_POINT_JITTER = 0.02  # standard deviation of the principal point around the centre, over the image side
BOX_OUTSIDE_FRACTION = 0.05  # the hand box may leave the image by this fraction of its side
MAX_CAMERA_TRIES = 100
PLACEMENT_ITERATIONS = 4


def sample_camera(rng: np.random.Generator, points: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random intrinsics and a translation that puts `points` (M, 3) 0.3-0.8 m in front of the camera.

    The focal length (over the image side) and the side of the hand box (over the image side) are drawn from
    `FOCAL_RANGE` and `BOX_FRACTION_RANGE`; the depth follows and is redrawn until it lies in `CAMERA_DISTANCE_RANGE`.
    The box centre is drawn so that the box stays in the image up to `BOX_OUTSIDE_FRACTION` of its side;
    a few fixed-point steps then adjust the focal length and the lateral translation to hit both targets
    despite perspective.

    Returns:
        (K (3, 3) pixels, translation (3,) metres): the hand in the camera frame is `points + translation`.
    """
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    extent = np.ptp(points[:, :2], axis=0).max()
    for _ in range(MAX_CAMERA_TRIES):
        focal_factor = rng.uniform(*FOCAL_RANGE)
        box_fraction = rng.uniform(*BOX_FRACTION_RANGE)
        depth = focal_factor * extent / box_fraction
        if CAMERA_DISTANCE_RANGE[0] <= depth <= CAMERA_DISTANCE_RANGE[1]:
            break
    depth = float(np.clip(depth, *CAMERA_DISTANCE_RANGE))

    jitter = np.clip(rng.normal(0.0, PRINCIPAL_POINT_JITTER, size=2), -0.05, 0.05) * image_size
    principal_point = (image_size - 1) / 2 + jitter
    K = np.array(
        [
            [focal_factor * image_size, 0.0, principal_point[0]],
            [0.0, focal_factor * image_size, principal_point[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    box_side = box_fraction * image_size
    slack = BOX_OUTSIDE_FRACTION * box_side
    box_centre = rng.uniform(box_side / 2 - slack, image_size - 1 - box_side / 2 + slack, size=2)

    translation = depth * np.linalg.solve(K, [*box_centre, 1.0]) - centre
    focal_limits = np.array(FOCAL_RANGE) * image_size
    for _ in range(PLACEMENT_ITERATIONS):
        uv = project(points + translation, K)
        focal = np.clip(K[0, 0] * box_side / np.ptp(uv, axis=0).max(), *focal_limits)
        K[0, 0] = K[1, 1] = focal
        uv = project(points + translation, K)
        shift = box_centre - (uv.min(axis=0) + uv.max(axis=0)) / 2
        translation[:2] += shift * depth / focal
    return K, translation
