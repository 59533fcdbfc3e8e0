"""Tests of the synthetic sample's forearm mesh: an outward tube with a sleeve."""

import numpy as np
import pytest

from clip_hand3d.data.rendering import compute_vertex_normals
from clip_hand3d.data.synthetic.forearm import forearm_mesh


def test_forearm_mesh_is_an_outward_tube_with_a_sleeve():
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    wrist_ring = np.stack([0.03 * np.cos(angles), np.zeros(12), 0.02 * np.sin(angles)], axis=1)
    vertices, faces, sleeve = forearm_mesh(wrist_ring, length=0.3, sleeve_start=0.1)
    assert vertices[:, 1].min() < 0 and vertices[:, 1].max() == pytest.approx(0.3)
    np.testing.assert_array_equal(sleeve, vertices[:, 1] >= 0.1)
    normals = compute_vertex_normals(vertices, faces)
    radial = vertices[:-1] * [1, 0, 1]  # every vertex but the cap's centre is on a ring around the y axis
    assert (np.einsum("nc,nc->n", normals[:-1], radial) > 0).all()
    assert normals[-1, 1] > 0.99  # the centre of the cap at the far end faces along the arm
