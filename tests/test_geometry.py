"""UVDSpace's root depth from a bone length, against hand-computed cases."""

import numpy as np
import pytest

from clip_hand3d.geometry import UVDSpace

# 1 heatmap pixel per crop pixel, 1 depth bin per 4 mm; focal length 100 px, principal point at the centre.
SPACE = UVDSpace(image_size=100, heatmap_size=100, depth_size=100, depth_range=0.4)
K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 50.0], [0.0, 0.0, 1.0]])
NEAR = 0.2 + 1e-3


def joints(b_uvd: tuple[float, float, float]) -> np.ndarray:
    """Joint 0 on the optical axis at the root's depth (d = 50), joint 1 at `b_uvd`."""
    return np.array([[50.0, 50.0, 50.0], b_uvd])


def test_a_bone_across_the_view_is_as_long_as_its_ray_offset_times_the_depth():
    # Joint 1 is 10 px off the axis, 0.1 of the depth: 3 cm long at 0.3 m.
    assert SPACE.root_depth_from_bone_length(joints((60.0, 50.0, 50.0)), K, (0, 1), 0.03) == pytest.approx(0.3)


def test_a_bone_with_a_depth_offset_solves_the_quadratic():
    # Joint 1 is 25 bins (0.1 m) deeper: (0.1 (z + 0.1), 0, 0.1), whose length at z = 0.4 is sqrt(0.0125).
    depth = SPACE.root_depth_from_bone_length(joints((60.0, 50.0, 75.0)), K, (0, 1), np.sqrt(0.0125))
    assert depth == pytest.approx(0.4)
    bone = SPACE.uvd_to_xyz(joints((60.0, 50.0, 75.0)), K, depth)
    assert np.linalg.norm(bone[1] - bone[0]) == pytest.approx(np.sqrt(0.0125), rel=1e-12)


@pytest.mark.parametrize("length", [0.05, 0.01])
def test_a_bone_longer_at_every_depth_gets_the_nearest_depth(length):
    # Its 0.1 m depth offset alone is longer than the length asked for.
    assert SPACE.root_depth_from_bone_length(joints((60.0, 50.0, 75.0)), K, (0, 1), length) == NEAR


def test_a_bone_that_would_need_a_depth_behind_the_near_limit_gets_the_near_limit():
    # 3 mm at 0.1 of the depth would need z = 0.03 m, closer than every joint the depth bins hold.
    assert SPACE.root_depth_from_bone_length(joints((60.0, 50.0, 50.0)), K, (0, 1), 0.003) == NEAR
