"""Tests of the synthetic sample's hand: uniform random rotations, a closed outward mesh, the wrist ring."""

import numpy as np
import pytest

from clip_hand3d.data.synthetic.hand import hand_faces, hand_model, random_rotation, sample_view, wrist_ring_ids


def test_random_rotations_are_uniform():
    rng = np.random.default_rng(0)
    matrices = np.stack([random_rotation(rng).as_matrix() for _ in range(4000)])
    np.testing.assert_allclose(
        matrices @ matrices.transpose(0, 2, 1), np.broadcast_to(np.eye(3), matrices.shape), atol=1e-9
    )
    # The Haar measure on SO(3) has zero mean: every entry averages out.
    assert np.abs(matrices.mean(axis=0)).max() < 0.04


def test_hand_mesh_is_closed_and_oriented_outwards_as_back_face_culling_needs():
    faces = hand_faces()
    vertices = hand_model().template_vertices.double().numpy()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = set(map(tuple, edges))
    assert len(directed) == len(edges)  # no edge is used twice in the same direction
    assert all((end, start) in directed for start, end in directed)  # every edge is shared, in opposite directions
    signed_volume = (
        np.einsum("fc,fc->f", vertices[faces[:, 0]], np.cross(vertices[faces[:, 1]], vertices[faces[:, 2]])).sum() / 6
    )
    assert 1e-4 < signed_volume < 1e-3  # cubic metres: positive, so the faces turn counter-clockwise outside


def test_wrist_ring_surrounds_the_wrist_joint():
    hand = hand_model()
    ring = hand.template_vertices.numpy()[wrist_ring_ids()]
    np.testing.assert_allclose(ring.mean(axis=0), hand.template_joints.numpy()[0], atol=1e-6)
    assert len(ring) >= 8
    np.testing.assert_allclose(ring[:, 1], 0.0, atol=1e-9)  # in the plane y = 0 of the rest frame
    # In order around the ring: the angle about the y axis turns monotonically, once around.
    turns = np.diff(np.unwrap(np.arctan2(ring[:, 2], ring[:, 0]), period=2 * np.pi))
    assert (np.sign(turns) == np.sign(turns[0])).all()
    assert abs(turns.sum()) == pytest.approx(2 * np.pi * (len(ring) - 1) / len(ring), rel=0.2)


def test_views_are_weighted_as_in_photos():
    rng = np.random.default_rng(0)
    rotations = np.stack([sample_view(rng).as_matrix() for _ in range(4000)])
    fingers = rotations @ np.array([0.0, -1.0, 0.0])  # the rest hand's fingers point up the image (-y)
    palm = rotations @ np.array([0.0, 0.0, -1.0])  # and its palm faces the camera (-z)
    # Fingers mostly point up the image (a uniform rotation: half of the time); egocentric views (fingers up and
    # away, the back of the hand to the camera) and views of the palm and the back are all common.
    assert (fingers[:, 1] < 0).mean() > 0.75
    egocentric = (fingers[:, 2] > 0.45) & (palm[:, 1] > 0.45)
    assert 0.15 < egocentric.mean() < 0.3
    palm_to_camera, back_to_camera = (palm[:, 2] < -0.7).mean(), (palm[:, 2] > 0.7).mean()
    assert 0.15 < palm_to_camera < back_to_camera < 0.35
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-9
    )
