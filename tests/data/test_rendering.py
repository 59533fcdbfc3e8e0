"""Tests of the CPU rasteriser against hand-computed coverage, occlusion, areas, depths and shading."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from clip_hand3d.data.rendering import (
    compute_vertex_normals,
    rasterize,
    render_mesh,
    supersampled_intrinsics,
)
from clip_hand3d.geometry import project

FOCAL = 10.0


def intrinsics(focal: float = FOCAL, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def lift(pixels: np.ndarray, depth: float, K: np.ndarray) -> np.ndarray:
    """Camera-frame points at `depth` that project to `pixels` (N, 2)."""
    homogeneous = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1)
    return homogeneous @ np.linalg.inv(K).T * depth


def square(x1: float, y1: float, x2: float, y2: float, depth: float, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera-facing square whose projection is the pixel rectangle [x1, x2] x [y1, y2]."""
    vertices = lift(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]), depth, K)
    # Seen from the camera (y down) 0 -> 3 -> 2 runs counter-clockwise: the front side faces the camera.
    faces = np.array([[0, 3, 2], [0, 2, 1]])
    return vertices, faces


def sphere_mesh(radius: float, centre: np.ndarray, num_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Closed, outward-oriented triangulation of a sphere: convex hull of a Fibonacci lattice."""
    index = np.arange(num_points) + 0.5
    polar = np.arccos(1 - 2 * index / num_points)
    azimuth = np.pi * (1 + 5**0.5) * index
    directions = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
    hull = ConvexHull(directions)
    faces = hull.simplices.copy()
    corners = directions[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = np.einsum("fc,fc->f", normals, hull.equations[:, :3]) < 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return centre + radius * directions, faces


def test_single_triangle_covers_exactly_the_pixel_centres_inside_it():
    K = intrinsics()
    corners = np.array([[1.5, 1.5], [1.5, 8.7], [8.7, 1.5]])  # counter-clockwise on screen: faces the camera
    vertices = lift(corners, 2.0, K)
    faces = np.array([[0, 1, 2]])
    face_index, _, _ = rasterize(vertices, faces, K, (12, 12))

    # Pixel centres (x, y) inside: x >= 2, y >= 2, x + y <= 10.2.
    expected = np.zeros((12, 12), dtype=bool)
    for y in range(12):
        for x in range(12):
            expected[y, x] = x >= 2 and y >= 2 and x + y <= 10
    assert expected.sum() == 28
    np.testing.assert_array_equal(face_index >= 0, expected)
    assert set(np.unique(face_index[expected])) == {0}


def test_back_facing_triangle_is_culled_unless_culling_is_off():
    K = intrinsics()
    vertices = lift(np.array([[1.5, 1.5], [8.7, 1.5], [1.5, 8.7]]), 2.0, K)  # clockwise on screen
    faces = np.array([[0, 1, 2]])
    culled, _, _ = rasterize(vertices, faces, K, (12, 12))
    two_sided, _, _ = rasterize(vertices, faces, K, (12, 12), cull_back_faces=False)
    assert (culled == -1).all()
    assert (two_sided == 0).sum() == 28


def test_triangle_clipped_by_the_image_border():
    K = intrinsics()
    vertices = lift(np.array([[-20.0, -20.0], [-20.0, 60.0], [60.0, -20.0]]), 1.0, K)
    face_index, _, _ = rasterize(vertices, np.array([[0, 1, 2]]), K, (6, 8))
    assert (face_index == 0).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_square_occludes_farther_square_whatever_the_face_order(near_first):
    K = intrinsics()
    near_vertices, near_faces = square(1.6, 1.6, 6.4, 6.4, 1.0, K)
    far_vertices, far_faces = square(3.6, 3.6, 9.4, 9.4, 3.0, K)
    parts = [(near_vertices, near_faces), (far_vertices, far_faces)]
    if not near_first:
        parts = parts[::-1]
    vertices = np.concatenate([parts[0][0], parts[1][0]])
    faces = np.concatenate([parts[0][1], parts[1][1] + 4])
    colors = np.concatenate([np.full((4, 3), 1.0 if near_first else 0.2), np.full((4, 3), 0.2 if near_first else 1.0)])

    rgb, mask, depth = render_mesh(vertices, faces, K, (12, 12), colors, (0, 0, -1), ambient=0.0, diffuse=1.0)
    near_pixels = np.zeros((12, 12), dtype=bool)
    near_pixels[2:7, 2:7] = True
    far_pixels = np.zeros((12, 12), dtype=bool)
    far_pixels[4:10, 4:10] = True
    np.testing.assert_array_equal(mask, near_pixels | far_pixels)
    assert (rgb[near_pixels] == 255).all()
    assert (rgb[far_pixels & ~near_pixels] == 51).all()
    np.testing.assert_allclose(depth[near_pixels], 1.0, rtol=1e-6)
    np.testing.assert_allclose(depth[far_pixels & ~near_pixels], 3.0, rtol=1e-6)
    assert np.isinf(depth[~mask]).all()


@pytest.mark.parametrize("supersample", [1, 2])
def test_sphere_mask_area_matches_the_analytic_projected_disc(supersample):
    radius, distance, focal = 0.05, 0.4, 300.0
    K = intrinsics(focal, 47.5, 47.5)
    vertices, faces = sphere_mesh(radius, np.array([0.0, 0.0, distance]))
    _, mask, depth = render_mesh(vertices, faces, K, (96, 96), supersample=supersample)

    # The tangent cone of a sphere on the optical axis projects to a disc of radius f r / sqrt(d^2 - r^2).
    disc_radius = focal * radius / np.sqrt(distance**2 - radius**2)
    assert mask.sum() == pytest.approx(np.pi * disc_radius**2, rel=0.02)
    assert depth[48, 48] == pytest.approx(distance - radius, rel=2e-3)
    assert depth[mask].max() < distance


def test_depth_equals_ray_plane_intersection_and_surface_points_project_to_pixel_centres():
    K = intrinsics(20.0, 7.0, 6.0)
    # A tilted plane n . X = c seen obliquely; a triangle on it, lifted from pixels around the image, covers it.
    normal = np.array([0.3, -0.2, 1.0])
    offset = 1.5
    rays = lift(np.array([[-12.0, -12.0], [45.0, -12.0], [-12.0, 45.0]]), 1.0, K)
    vertices = rays * (offset / (rays @ normal))[:, None]
    faces = np.array([[0, 1, 2]])
    face_index, barycentric, depth = rasterize(vertices, faces, K, (16, 16), cull_back_faces=False)
    assert (face_index == 0).all()

    y, x = np.mgrid[0:16, 0:16]
    rays = np.stack([x, y, np.ones_like(x)], axis=-1) @ np.linalg.inv(K).T  # z component 1
    expected_depth = offset / (rays @ normal)
    np.testing.assert_allclose(depth, expected_depth, rtol=1e-10)

    surface_points = barycentric.reshape(-1, 3) @ vertices
    np.testing.assert_allclose(project(surface_points, K), np.stack([x, y], axis=-1).reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(barycentric.sum(axis=-1), 1.0)


def test_mask_faces_limit_the_mask_and_depth_but_still_occlude():
    K = intrinsics()
    near_vertices, near_faces = square(1.6, 1.6, 6.4, 6.4, 1.0, K)  # an occluder, not part of the mask
    far_vertices, far_faces = square(3.6, 3.6, 9.4, 9.4, 3.0, K)
    vertices = np.concatenate([near_vertices, far_vertices])
    faces = np.concatenate([near_faces, far_faces + 4])
    mask_faces = np.array([False, False, True, True])
    rgb_all, mask_all, _ = render_mesh(vertices, faces, K, (12, 12))
    rgb, mask, depth = render_mesh(vertices, faces, K, (12, 12), mask_faces=mask_faces)

    expected = np.zeros((12, 12), dtype=bool)
    expected[4:10, 4:10] = True
    expected[4:7, 4:7] = False
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(depth[expected], 3.0, rtol=1e-6)
    assert np.isinf(depth[~expected]).all()
    np.testing.assert_array_equal(rgb, rgb_all)  # the image does not depend on the mask
    assert mask_all.sum() == 25 + 36 - 9


def test_lambert_and_ambient_shading_values():
    K = intrinsics()
    vertices, faces = square(-0.5, -0.5, 3.5, 3.5, 1.0, K)
    colors = np.full((4, 3), 0.5)
    facing_light, _, _ = render_mesh(vertices, faces, K, (3, 3), colors, (0, 0, -1), ambient=0.2, diffuse=0.6)
    grazing_light, _, _ = render_mesh(vertices, faces, K, (3, 3), colors, (1, 0, -1), ambient=0.2, diffuse=0.6)
    light_behind, _, _ = render_mesh(vertices, faces, K, (3, 3), colors, (0, 0, 1), ambient=0.2, diffuse=0.6)
    assert (facing_light == round(0.5 * 0.8 * 255)).all()
    assert (grazing_light == round(0.5 * (0.2 + 0.6 / np.sqrt(2)) * 255)).all()
    assert (light_behind == round(0.5 * 0.2 * 255)).all()


def test_background_shows_where_the_mesh_does_not_cover():
    K = intrinsics()
    vertices, faces = square(1.6, 1.6, 3.4, 3.4, 1.0, K)
    background = np.zeros((6, 6, 3), dtype=np.uint8)
    background[..., 2] = 200
    rgb, mask, _ = render_mesh(vertices, faces, K, (6, 6), background=background, ambient=1.0, diffuse=0.0)
    assert mask.sum() == 4
    np.testing.assert_array_equal(rgb[~mask], background[~mask])
    assert (rgb[mask] == round(0.8 * 255)).all()


def test_mesh_outside_the_image_leaves_the_background():
    K = intrinsics()
    vertices, faces = square(20.0, 20.0, 30.0, 30.0, 1.0, K)
    background = np.full((6, 6, 3), 77, dtype=np.uint8)
    rgb, mask, depth = render_mesh(vertices, faces, K, (6, 6), background=background, supersample=2)
    np.testing.assert_array_equal(rgb, background)
    assert not mask.any() and np.isinf(depth).all()


def test_supersampled_edges_blend_coverage_with_the_background():
    K = intrinsics()
    # Sub-pixel centres of pixel j sit at j -/+ 0.25: edges at 1.9 and 6.1 half-cover pixels 2 and 6.
    vertices, faces = square(1.9, 1.9, 6.1, 6.1, 1.0, K)
    white = np.ones((4, 3))
    rgb, mask, _ = render_mesh(vertices, faces, K, (9, 9), white, ambient=1.0, diffuse=0.0, supersample=2)
    assert (rgb[3:6, 3:6] == 255).all()
    assert (rgb[2, 3:6] == 128).all() and (rgb[6, 3:6] == 128).all()
    assert (rgb[3:6, 2] == 128).all() and (rgb[3:6, 6] == 128).all()
    assert (rgb[2, 2] == 64).all()  # a quarter covered: 0.25 * 255 rounds to 64
    assert (rgb[0:2] == 0).all() and (rgb[7:] == 0).all()
    expected_mask = np.zeros((9, 9), dtype=bool)
    expected_mask[2:7, 2:7] = True
    expected_mask[[2, 2, 6, 6], [2, 6, 2, 6]] = False
    np.testing.assert_array_equal(mask, expected_mask)


def test_supersampled_intrinsics_map_subpixel_centres_into_their_pixel():
    K = intrinsics(50.0, 10.0, 12.0)
    point = np.array([[0.013, -0.021, 0.5]])
    coarse = project(point, K)[0]
    fine = project(point, supersampled_intrinsics(K, 3))[0]
    np.testing.assert_allclose(fine, 3 * coarse + 1.0)
    # The fine pixel centres 0, 1, 2 are the coarse positions -1/3, 0, 1/3 of pixel 0.
    np.testing.assert_allclose(
        np.linalg.solve(supersampled_intrinsics(K, 3), [0.0, 0.0, 1.0])[:2] * 50 + [10, 12], [-1 / 3, -1 / 3]
    )


def test_vertex_normals_of_a_sphere_point_outwards():
    centre = np.array([0.1, -0.2, 1.0])
    vertices, faces = sphere_mesh(0.3, centre, num_points=200)
    normals = compute_vertex_normals(vertices, faces)
    radial = (vertices - centre) / 0.3
    assert np.einsum("nc,nc->n", normals, radial).min() > 0.99


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vertices_cam": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])}, "in front of the camera"),
        ({"faces": np.array([[0, 1, 3]])}, "faces index vertices outside"),
        ({"faces": np.array([[0.0, 1.0, 2.0]])}, "faces must be an integer array"),
        ({"K": np.eye(2)}, "K must be a finite"),
        ({"image_size": (8,)}, "image_size must be"),
        ({"vertex_colors": np.ones((2, 3))}, "vertex_colors must have shape"),
        ({"background": np.zeros((8, 8, 3), dtype=np.float32)}, "background must be"),
        ({"light_direction": (0.0, 0.0, 0.0)}, "light_direction"),
        ({"supersample": 0}, "supersample must be"),
        ({"mask_faces": np.array([1])}, "mask_faces must be a bool array"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    arguments = {
        "vertices_cam": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]),
        "faces": np.array([[0, 1, 2]]),
        "K": intrinsics(),
        "image_size": (8, 8),
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        render_mesh(**arguments)
