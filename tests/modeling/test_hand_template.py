"""Tests of the generated hand template: a closed outward mesh of adult size, stochastic skinning, fast and cached."""

import time

import numpy as np
import pytest

from clip_hand3d.modeling.hand_template import NUM_BONES, NUM_FACES, NUM_VERTICES, build_hand_template

INDEX_PIP = 6
INDEX_BONES = [4, 5, 6]


def test_mesh_is_a_closed_oriented_genus_zero_manifold():
    template = build_hand_template()
    faces = template.faces
    assert template.vertices.shape == (NUM_VERTICES, 3) and faces.shape == (NUM_FACES, 3) == (1552, 3)
    assert faces.dtype == np.int64 and set(np.unique(faces)) == set(range(NUM_VERTICES))
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    # Consistent orientation: every directed edge once, and its reverse once (every edge in exactly two faces).
    assert len(np.unique(directed, axis=0)) == len(directed)
    assert set(map(tuple, directed)) == set(map(tuple, directed[:, ::-1]))
    num_edges = len(directed) // 2
    assert NUM_VERTICES - num_edges + NUM_FACES == 2
    # 2-manifold vertices: the faces around each vertex form one cycle.
    next_around = {}
    for face in faces.tolist():
        for k in range(3):
            next_around.setdefault(face[k], {})[face[(k + 1) % 3]] = face[(k + 2) % 3]
    for vertex, ring in next_around.items():
        start = next(iter(ring))
        current, steps = ring[start], 1
        while current != start:
            current, steps = ring[current], steps + 1
        assert steps == len(ring), f"vertex {vertex} is not a manifold vertex"
    # One connected component.
    seen, stack = {0}, [0]
    while stack:
        for neighbour in next_around[stack.pop()]:
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    assert len(seen) == NUM_VERTICES


def test_faces_face_outwards_and_are_not_degenerate():
    template = build_hand_template()
    corners = template.vertices[template.faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    signed_volume = np.einsum("fc,fc->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert 2e-4 < signed_volume < 5e-4  # cubic metres: 200-500 ml
    assert (np.linalg.norm(normals, axis=1) / 2).min() > 1e-6  # 1 mm^2
    # The fingertip faces point away from the finger, along the distal bone.
    tips = template.fingertip_vertex_ids
    for finger, tip in enumerate(tips):
        tip_faces = np.flatnonzero((template.faces == tip).any(axis=1))
        distal = template.joints[4 + 4 * finger] - template.joints[3 + 4 * finger]
        assert (normals[tip_faces] @ distal > 0).all()


def test_mean_hand_has_adult_size_and_separate_fingers():
    template = build_hand_template()
    joints, vertices, parts = template.joints, template.vertices, template.vertex_parts
    assert np.allclose(joints[0], 0.0)
    assert 0.17 < np.linalg.norm(joints[12] - joints[0]) < 0.20  # wrist to middle fingertip
    assert 0.07 < np.ptp(vertices[parts == 0, 0]) < 0.09  # palm width
    assert np.bincount(parts).tolist() == [383, 71, 81, 81, 81, 81]
    free = template.skinning_weights[:, 0] == 0  # finger vertices beyond the web
    for finger in (1, 2, 3):
        first = vertices[free & (parts == finger + 1)]
        second = vertices[free & (parts == finger + 2)]
        gap = np.linalg.norm(first[:, None] - second[None], axis=-1).min()
        # Adult fingers side by side nearly touch (knuckles 19-21 mm apart, fingers 18-20 mm wide); they must not
        # intersect.
        assert gap > 0.001, f"fingers {finger} and {finger + 1} touch beyond the web"
    # The thumb is opposed: it points forward (towards the camera, -z) as well as sideways.
    thumb_direction = joints[4] - joints[1]
    assert thumb_direction[0] > 0 and thumb_direction[2] < -0.01


def test_skinning_weights_and_joint_regressor_are_stochastic_and_consistent():
    template = build_hand_template()
    weights, regressor = template.skinning_weights, template.joint_regressor
    assert weights.shape == (NUM_VERTICES, NUM_BONES) and regressor.shape == (21, NUM_VERTICES)
    assert (weights >= 0).all() and np.allclose(weights.sum(axis=1), 1.0)
    assert np.allclose(regressor.sum(axis=1), 1.0)
    # Non-negative but for the finger MCP joints inside the palm: extrapolated from two rings, weights 2.2 and -1.2.
    mcp_joints = [5, 9, 13, 17]
    assert (np.delete(regressor, mcp_joints, axis=0) >= 0).all()
    for joint in mcp_joints:
        assert np.allclose(np.sort(np.unique(regressor[joint]) * 10), [-1.2, 0.0, 2.2])
    assert np.allclose(regressor @ template.vertices, template.joints, atol=1e-12)
    assert (weights[template.vertex_parts == 0, 1:][:, 3:] == 0).all()  # palm: no finger bones but the thumb's
    # Fingertips follow the distal bone alone; the ring at the index PIP joint is shared half and half.
    assert np.array_equal(weights[template.fingertip_vertex_ids].argmax(axis=1), [3, 6, 9, 12, 15])
    assert np.allclose(weights[template.fingertip_vertex_ids].max(axis=1), 1.0)
    pip_ring = np.flatnonzero(regressor[INDEX_PIP])
    assert len(pip_ring) == 10
    assert np.allclose(weights[pip_ring][:, INDEX_BONES[:2]], 0.5)


def test_generation_is_deterministic_fast_and_cached():
    assert build_hand_template() is build_hand_template()
    durations = []
    for _ in range(3):
        start = time.perf_counter()
        fresh = build_hand_template.__wrapped__()
        durations.append(time.perf_counter() - start)
    assert min(durations) < 0.3
    cached = build_hand_template()
    for name in ("vertices", "faces", "joints", "skinning_weights", "joint_regressor", "vertex_shape_directions"):
        assert np.array_equal(getattr(fresh, name), getattr(cached, name)), name
    with pytest.raises(ValueError):
        cached.vertices[0, 0] = 1.0  # read-only: the cache cannot be corrupted
