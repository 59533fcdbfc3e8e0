"""Tests of the synthetic sample's camera: focal length, distance and box stay in their ranges."""

import numpy as np

from clip_hand3d.data.synthetic.camera import (
    BOX_FRACTION_RANGE,
    BOX_OUTSIDE_FRACTION,
    CAMERA_DISTANCE_RANGE,
    FOCAL_RANGE,
    sample_camera,
)
from clip_hand3d.data.synthetic.hand import sample_hand
from clip_hand3d.data.synthetic.scene import sample_generator
from clip_hand3d.geometry import project


def test_camera_focal_depth_and_box_stay_in_their_ranges():
    for index in range(20):
        rng = sample_generator(7, index)
        vertices, joints, _ = sample_hand(rng)
        points = np.concatenate([vertices, joints])
        K, translation = sample_camera(rng, points, 224)
        uv = project(points + translation, K)
        box_side = np.ptp(uv, axis=0).max()
        centre_depth = ((points.min(axis=0) + points.max(axis=0)) / 2 + translation)[2]
        assert FOCAL_RANGE[0] * 224 - 1e-9 <= K[0, 0] == K[1, 1] <= FOCAL_RANGE[1] * 224 + 1e-9
        assert np.abs(K[:2, 2] - 111.5).max() <= 0.05 * 224 + 1e-9
        assert CAMERA_DISTANCE_RANGE[0] - 1e-9 <= centre_depth <= CAMERA_DISTANCE_RANGE[1] + 1e-9
        assert BOX_FRACTION_RANGE[0] - 0.01 <= box_side / 224 <= BOX_FRACTION_RANGE[1] + 0.01
        allowed = BOX_OUTSIDE_FRACTION * box_side + 0.5
        assert uv.min() >= -allowed and uv.max() <= 223 + allowed
