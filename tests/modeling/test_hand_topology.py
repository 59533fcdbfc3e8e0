import numpy as np
import pytest
import torch

from clip_hand3d.modeling.hand_template import build_hand_template
from clip_hand3d.modeling.hand_topology import (
    HandTopology,
    _closest_points_on_triangles,
    _geodesic_voronoi,
    _neighbour_lists,
)

LEVEL_SIZES = (21, 98, 389, 778)


@pytest.fixture(scope="module")
def topology() -> HandTopology:
    return HandTopology.builtin()


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere: icosahedron subdivided `subdivisions` times (12, 42, 162, ... vertices)."""
    golden = (1 + 5**0.5) / 2
    vertices = [(-1, golden, 0), (1, golden, 0), (-1, -golden, 0), (1, -golden, 0)]
    vertices += [(0, -1, golden), (0, 1, golden), (0, -1, -golden), (0, 1, -golden)]
    vertices += [(golden, 0, -1), (golden, 0, 1), (-golden, 0, -1), (-golden, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2)]
    faces += [(10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5)]
    faces += [(2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    vertices = [np.array(vertex, dtype=float) / np.linalg.norm(vertex) for vertex in vertices]
    for _ in range(subdivisions):
        midpoints, finer = {}, []
        for face in faces:
            middle = []
            for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])):
                key = (min(a, b), max(a, b))
                if key not in midpoints:
                    midpoints[key] = len(vertices)
                    point = vertices[a] + vertices[b]
                    vertices.append(point / np.linalg.norm(point))
                middle.append(midpoints[key])
            finer += [(face[0], middle[0], middle[2]), (face[1], middle[1], middle[0])]
            finer += [(face[2], middle[2], middle[1]), tuple(middle)]
        faces = finer
    return np.array(vertices), np.array(faces)


def sphere_topology() -> HandTopology:
    vertices, faces = icosphere(2)
    regressor = np.zeros((21, len(vertices)))
    regressor[np.arange(21), np.arange(21) * 7] = 1.0
    return HandTopology.from_mesh(vertices, faces, regressor, level_sizes=(21, 40, 162))


def test_builtin_levels_match_the_hand_template(topology):
    template = build_hand_template()
    assert topology.level_sizes == LEVEL_SIZES
    assert [tuple(vertices.shape) for vertices in topology.template_vertices] == [(size, 3) for size in LEVEL_SIZES]
    assert torch.equal(topology.faces, torch.tensor(template.faces))
    assert torch.allclose(topology.template_vertices[-1].double(), torch.tensor(template.vertices))
    assert torch.allclose(topology.template_vertices[0].double(), torch.tensor(template.joints))
    assert torch.allclose(topology.joint_regressor.double(), torch.tensor(template.joint_regressor))
    # Coarse levels are nested subsets of the mesh's vertices.
    for coarse, fine in zip(topology.template_vertices[1:-1], topology.template_vertices[2:], strict=True):
        assert all(row in set(map(tuple, fine.tolist())) for row in map(tuple, coarse.tolist()))


def test_upsampling_matrices_are_stochastic_and_copy_coarse_vertices(topology):
    for level, matrix in enumerate(topology.upsample):
        assert matrix.shape == (LEVEL_SIZES[level + 1], LEVEL_SIZES[level]) and matrix.dtype == torch.float32
        assert (matrix >= 0).all()
        assert torch.allclose(matrix.sum(dim=1), torch.ones(matrix.shape[0]), atol=1e-6)
        assert ((matrix > 0).sum(dim=1) <= 3).all()
    for level in (1, 2):
        same = (topology.template_vertices[level][:, None] == topology.template_vertices[level + 1][None]).all(-1)
        copied = topology.upsample[level][same.int().argmax(dim=1)]
        assert torch.equal(copied, torch.eye(LEVEL_SIZES[level]))


def test_builtin_reconstruction_errors_stay_below_the_measured_bounds(topology):
    errors = topology.reconstruction_error_mm()
    # Measured: 11.4, 2.30, 0.47, 0 mm. Level 0 cannot do better than the skeleton's distance to the surface.
    assert errors[0] < 12.5 and errors[1] < 2.6 and errors[2] < 0.6 and errors[3] == 0.0
    assert errors[0] > errors[1] > errors[2] > errors[3]


def test_state_dict_round_trip_is_exact(topology):
    state = topology.to_state_dict()
    names = {"faces", "joint_regressor"} | {f"template_vertices_{k}" for k in range(4)}
    names |= {f"upsample_{k}" for k in range(3)}
    assert set(state) == names
    restored = HandTopology.from_state_dict(state)
    assert restored.level_sizes == topology.level_sizes
    for name, value in restored.to_state_dict().items():
        assert torch.equal(value, state[name]) and value.dtype == state[name].dtype, name


def test_from_state_dict_names_missing_and_misshapen_tensors(topology):
    state = topology.to_state_dict()
    del state["upsample_1"]
    with pytest.raises(KeyError, match="upsample_1"):
        HandTopology.from_state_dict(state)
    state = topology.to_state_dict()
    state["joint_regressor"] = state["joint_regressor"][:20]
    with pytest.raises(ValueError, match="joint_regressor must be float of shape \\(21, 778\\)"):
        HandTopology.from_state_dict(state)


def test_builtin_returns_independent_copies():
    first = HandTopology.builtin()
    first.upsample[0].zero_()
    assert torch.isclose(HandTopology.builtin().upsample[0].sum(), torch.tensor(98.0))


def test_upsample_to_full_chains_the_matrices(topology):
    values = torch.randn(2, 98, 5, generator=torch.Generator().manual_seed(0))
    expected = topology.upsample[2] @ (topology.upsample[1] @ values)
    assert torch.allclose(topology.upsample_to_full(values, 1), expected, atol=1e-6)
    assert torch.equal(topology.upsample_to_full(values[:, :1].expand(2, 778, 5), 3), values[:, :1].expand(2, 778, 5))
    with pytest.raises(ValueError, match="x must have shape \\(batch, 98, channels\\) for level 1"):
        topology.upsample_to_full(torch.zeros(2, 97, 5), 1)


def test_zeros_has_the_shapes_of_a_real_topology(topology):
    placeholder = HandTopology.zeros(LEVEL_SIZES, 1552)
    real, empty = topology.to_state_dict(), placeholder.to_state_dict()
    assert set(empty) == set(real)
    for name, value in empty.items():
        assert value.shape == real[name].shape and value.dtype == real[name].dtype, name
        assert not value.any()


def test_from_mesh_is_deterministic_on_another_mesh():
    first, second = sphere_topology(), sphere_topology()
    assert first.level_sizes == (21, 40, 162)
    for name, value in first.to_state_dict().items():
        assert torch.equal(value, second.to_state_dict()[name]), name
    errors = first.reconstruction_error_mm()
    assert errors[2] == 0.0 and errors[1] < 60.0  # unit sphere: measured 49 mm (flat facets between 40 seeds)


def test_from_mesh_names_bad_inputs():
    vertices, faces = icosphere(1)
    regressor = np.full((21, 42), 1 / 42)
    with pytest.raises(ValueError, match="faces index vertices 1..42, but there are 42 vertices"):
        HandTopology.from_mesh(vertices, np.where(faces == 0, 42, faces), regressor, level_sizes=(21, 30, 42))
    with pytest.raises(ValueError, match="joint_regressor must have shape \\(21, 42\\)"):
        HandTopology.from_mesh(vertices, faces, regressor[:, :40], level_sizes=(21, 30, 42))
    with pytest.raises(ValueError, match="level_sizes must increase from 21"):
        HandTopology.from_mesh(vertices, faces, regressor, level_sizes=(21, 50, 42))
    triangles = np.random.default_rng(0).normal(size=(90, 3))  # 30 separate triangles
    with pytest.raises(ValueError, match="more connected pieces than the coarse levels \\(25,\\) have vertices"):
        HandTopology.from_mesh(
            triangles, np.arange(90).reshape(30, 3), np.full((21, 90), 1 / 90), level_sizes=(21, 25, 90)
        )


def test_closest_points_on_triangles_hand_computed():
    triangle = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    points = np.array([[0.25, 0.25, 2.0], [2.0, -1.0, 0.0], [0.5, 0.5, 1.0], [-1.0, -1.0, 0.0]])
    weights, distances = _closest_points_on_triangles(points, np.repeat(triangle[None], 4, axis=0))
    expected = [[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]
    assert np.allclose(weights, expected)
    assert np.allclose(distances, [2.0, np.sqrt(2.0), 1.0, np.sqrt(2.0)])
    segment = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])  # a bone: repeated corner
    weights, distances = _closest_points_on_triangles(np.array([[0.5, 1.0, 0.0]]), segment)
    assert np.allclose(weights @ segment[0], [0.5, 0.0, 0.0]) and np.allclose(distances, [1.0])


def test_geodesic_voronoi_on_a_path():
    vertices = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.5, 0, 0], [5.0, 0, 0]])
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    labels = _geodesic_voronoi(np.array([4, 0]), _neighbour_lists(vertices, edges))
    assert labels.tolist() == [1, 1, 1, 0, 0]
