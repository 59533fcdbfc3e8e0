"""A small CPU rasteriser for triangle meshes: perspective projection, z-buffer, Lambert shading.

Pure numpy, vectorised over all faces at once: each face's candidate pixels are the spans of pixel rows that
may cross it (so thin, slanted faces cost their area, not their bounding box), an exact edge-function test keeps
the pixel centres inside, and one scatter-max on 1/z resolves visibility. Back faces are culled first and only
the window of the image that the mesh can reach is rendered, which makes it fast enough to render the synthetic
hand data set on a CPU.

Conventions follow `clip_hand3d.geometry`: camera frame as OpenCV (x right, y down, z away from the
camera), metres; pixel centres at integer coordinates, so pixel (row i, column j) is the point (x=j, y=i)
of `geometry.project`. A pixel is covered by a triangle when its centre lies inside or on the triangle.
"""

import numpy as np

from clip_hand3d.geometry import project
from clip_hand3d.validation import check_positive_int

DEFAULT_LIGHT_DIRECTION = (0.3, -0.5, -1.0)
# Faces whose doubled projected area (square pixels) is below this are degenerate and skipped.
MIN_PROJECTED_AREA = 1e-12


def compute_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals (N, 3): the area-weighted mean of the normals of the faces around each vertex.

    The normals point to the side from which the faces' vertices run counter-clockwise (right-hand rule),
    i.e. outwards for a closed mesh with outward orientation. Vertices in no face get a zero normal.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)


def supersampled_intrinsics(K: np.ndarray, factor: int) -> np.ndarray:
    """Intrinsics of an image `factor` times larger whose `factor` x `factor` pixel blocks tile the pixels of `K`.

    With pixel centres at integer coordinates, pixel `j` spans [j - 1/2, j + 1/2]; its sub-pixel centres
    sit at `x = j + (k + 1/2) / factor - 1/2`, so the fine coordinate is `factor * x + (factor - 1) / 2`.
    """
    scaling = np.array([[factor, 0.0, (factor - 1) / 2], [0.0, factor, (factor - 1) / 2], [0.0, 0.0, 1.0]])
    return scaling @ np.asarray(K, dtype=np.float64)


def rasterize(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    image_size: tuple[int, int],
    cull_back_faces: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of a mesh: which face each pixel sees, where, and how far.

    Args:
        vertices_cam: (N, 3) vertices in the camera frame, metres, all with z > 0.
        faces: (F, 3) vertex indices.
        K: (3, 3) intrinsics.
        image_size: (height, width) in pixels.
        cull_back_faces: skip faces whose counter-clockwise side (see `compute_vertex_normals`) points
            away from the camera. Right for closed, outward-oriented meshes; turn off for open or
            inconsistently oriented ones.

    Returns:
        face_index: (H, W) int64, the nearest face covering each pixel centre, -1 where none does.
        barycentric: (H, W, 3) float64 perspective-correct barycentric coordinates of the pixel's surface
            point in its face (zeros for background): the point is `sum_k b_k * vertices[face[k]]`.
        depth: (H, W) float64 camera-frame z of that point in metres, inf for background.
    """
    height, width = _check_image_size(image_size)
    vertices_cam, faces, K = _check_mesh_and_camera(vertices_cam, faces, K)
    corners = vertices_cam[faces]  # (F, 3 corners, 3 xyz)
    keep = np.ones(len(faces), dtype=bool)
    if cull_back_faces:
        face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        keep &= np.einsum("fc,fc->f", face_normals, corners[:, 0]) < 0
    projected = corners @ K.T
    inverse_z = 1.0 / corners[..., 2]  # (F, 3)
    points = projected[..., :2] * inverse_z[..., None]  # (F, 3, 2) pixels
    edge_a = points[:, 1] - points[:, 0]
    edge_b = points[:, 2] - points[:, 0]
    doubled_area = edge_a[:, 0] * edge_b[:, 1] - edge_a[:, 1] * edge_b[:, 0]
    keep &= np.abs(doubled_area) > MIN_PROJECTED_AREA

    x_min = np.clip(np.ceil(points[..., 0].min(axis=1)), 0, width).astype(np.int64)
    x_max = np.clip(np.floor(points[..., 0].max(axis=1)), -1, width - 1).astype(np.int64)
    y_min = np.clip(np.ceil(points[..., 1].min(axis=1)), 0, height).astype(np.int64)
    y_max = np.clip(np.floor(points[..., 1].max(axis=1)), -1, height - 1).astype(np.int64)
    box_width = x_max - x_min + 1
    box_height = y_max - y_min + 1
    keep &= (box_width > 0) & (box_height > 0)

    face_ids = np.flatnonzero(keep)
    weight_planes = _barycentric_planes(points[face_ids], doubled_area[face_ids])  # (F', 3 weights, 3 coeffs)
    inverse_z_plane = np.einsum("fkc,fk->fc", weight_planes, inverse_z[face_ids])  # 1/z is affine in pixels
    # One table gathered once per candidate: the planes of w_0, w_1 and 1/z.
    table = np.concatenate([weight_planes[:, :2].reshape(-1, 6), inverse_z_plane], axis=1)

    row_face, row_y, row_x, row_width = _row_spans(
        weight_planes, x_min[face_ids], x_max[face_ids], y_min[face_ids], box_height[face_ids]
    )
    candidate_row = np.repeat(np.arange(len(row_face)), row_width)
    offset_in_row = np.arange(row_width.sum()) - np.repeat(np.cumsum(row_width) - row_width, row_width)
    candidate_face = row_face[candidate_row]
    x = row_x[candidate_row] + offset_in_row
    y = row_y[candidate_row]
    candidates = table[candidate_face]
    weight_0 = candidates[:, 0] * x + candidates[:, 1] * y + candidates[:, 2]
    weight_1 = candidates[:, 3] * x + candidates[:, 4] * y + candidates[:, 5]
    inside = (weight_0 >= 0) & (weight_1 >= 0) & (weight_0 + weight_1 <= 1)
    candidates, x, y, candidate_face = candidates[inside], x[inside], y[inside], candidate_face[inside]
    candidate_inverse_z = candidates[:, 6] * x + candidates[:, 7] * y + candidates[:, 8]
    pixel = y * width + x

    nearest_inverse_z = np.full(height * width, -np.inf)
    np.maximum.at(nearest_inverse_z, pixel, candidate_inverse_z)
    wins = candidate_inverse_z == nearest_inverse_z[pixel]
    face_buffer = np.full(height * width, -1, dtype=np.int64)
    face_buffer[pixel[wins]] = candidate_face[wins]

    covered = np.flatnonzero(face_buffer >= 0)
    local_face = face_buffer[covered]
    covered_y, covered_x = np.divmod(covered, width)
    planes = weight_planes[local_face]  # (P, 3, 3)
    screen_weights = planes[..., 0] * covered_x[:, None] + planes[..., 1] * covered_y[:, None] + planes[..., 2]
    perspective_weights = screen_weights * inverse_z[face_ids][local_face]
    perspective_weights /= perspective_weights.sum(axis=1, keepdims=True)

    face_index = np.full(height * width, -1, dtype=np.int64)
    face_index[covered] = face_ids[local_face]
    barycentric = np.zeros((height * width, 3))
    barycentric[covered] = perspective_weights
    depth = np.full(height * width, np.inf)
    depth[covered] = 1.0 / nearest_inverse_z[covered]
    return face_index.reshape(height, width), barycentric.reshape(height, width, 3), depth.reshape(height, width)


def _row_spans(
    weight_planes: np.ndarray, x_min: np.ndarray, x_max: np.ndarray, y_min: np.ndarray, box_height: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pixel columns each triangle may cover on each pixel row of its box, so that thin, slanted triangles
    cost their area rather than their bounding box.

    On row `y`, `w_k(x, y) = a_k x + (b_k y + c_k) >= 0` bounds `x` from below where `a_k > 0` and from above
    where `a_k < 0` (and empties the row where `a_k = 0` and the rest is negative). Spans are rounded outwards,
    one pixel wide of the bound at most, so rounding never loses a pixel; the exact inside test comes after.

    Returns:
        (face, y, x_start, width) per row, integers; `face` indexes `weight_planes`.
    """
    row_face = np.repeat(np.arange(len(y_min)), box_height)
    y = y_min[row_face] + np.arange(len(row_face)) - np.repeat(np.cumsum(box_height) - box_height, box_height)
    planes = weight_planes[row_face]  # (R, 3 weights, 3 coefficients)
    slope = planes[..., 0]
    offset = planes[..., 1] * y[:, None] + planes[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = -offset / slope
    lower = np.where(slope > 0, crossing, -np.inf).max(axis=1)
    upper = np.where(slope < 0, crossing, np.inf).min(axis=1)
    x_start = np.maximum(np.floor(lower), x_min[row_face])
    x_end = np.minimum(np.ceil(upper), x_max[row_face])
    width = np.maximum(x_end - x_start + 1, 0).astype(np.int64)
    width[((slope == 0) & (offset < 0)).any(axis=1)] = 0
    return row_face, y, x_start.astype(np.int64), width


def _barycentric_planes(points: np.ndarray, doubled_area: np.ndarray) -> np.ndarray:
    """(F, 3, 3) coefficients (a, b, c) with screen-space barycentric weight `w_k(x, y) = a x + b y + c`.

    `points` (F, 3, 2) are the projected corners in pixels, `doubled_area` (F,) their signed doubled area.
    `w_k` is the signed area of the triangle (point, next corner, corner after) over the face's area, so
    the weights are all >= 0 exactly inside the triangle whatever its winding.
    """
    start = np.roll(points, -1, axis=1)  # corner k+1
    end = np.roll(points, -2, axis=1)  # corner k+2
    a = start[..., 1] - end[..., 1]
    b = end[..., 0] - start[..., 0]
    c = start[..., 0] * end[..., 1] - end[..., 0] * start[..., 1]
    return np.stack([a, b, c], axis=-1) / doubled_area[:, None, None]


def shade(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    face_index: np.ndarray,
    barycentric: np.ndarray,
    vertex_colors: np.ndarray,
    vertex_normals: np.ndarray,
    light_direction: np.ndarray,
    ambient: "float | np.ndarray",
    diffuse: "float | np.ndarray",
    specular: float = 0.0,
    shininess: float = 20.0,
) -> np.ndarray:
    """Lambert + ambient shading of rasterised pixels, plus a Blinn-Phong highlight of the first light (white,
    intensity `specular`, exponent `shininess`): (H, W, 3) float64 colours in [0, 1], zeros for background.

    `light_direction` is one unit direction (3,) or several (L, 3), with one `diffuse` intensity each (a float or
    (L,)); `ambient` is a grey intensity or an RGB colour (3,) (an environment's tone).

    Colours and normals are interpolated with the perspective-correct barycentric coordinates; a normal
    that faces away from the camera (a back face seen through a hole) is flipped, so surfaces are two-sided.
    `light_direction` points from the surface towards the light, in the camera frame.
    """
    covered = face_index >= 0
    attributes = np.concatenate([vertex_colors, vertex_normals, vertices_cam], axis=1)  # (N, 9)
    interpolated = np.einsum("pk,pka->pa", barycentric[covered], attributes[faces[face_index[covered]]])
    colors, normals, surface_points = interpolated[:, :3], interpolated[:, 3:6], interpolated[:, 6:]
    facing_away = np.einsum("pc,pc->p", normals, surface_points) > 0
    normals[facing_away] *= -1
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    lights = np.atleast_2d(light_direction)
    lambert = np.clip(normals @ lights.T, 0.0, None)  # (P, L)
    irradiance = np.reshape(ambient, (1, -1)) + (lambert @ np.broadcast_to(diffuse, (len(lights),)))[:, None]
    shaded = colors * irradiance
    lambert = lambert[:, 0]
    if specular > 0:
        halfway = lights[0] - surface_points / np.linalg.norm(surface_points, axis=1, keepdims=True)
        halfway /= np.maximum(np.linalg.norm(halfway, axis=1, keepdims=True), 1e-12)
        highlight = np.clip(np.einsum("pc,pc->p", normals, halfway), 0.0, None) ** shininess
        shaded = shaded + (specular * highlight * (lambert > 0))[:, None]
    image = np.zeros(face_index.shape + (3,))
    image[covered] = np.clip(shaded, 0.0, 1.0)
    return image


def render_mesh(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    image_size: tuple[int, int],
    vertex_colors: np.ndarray | None = None,
    light_direction: tuple[float, float, float] | np.ndarray = DEFAULT_LIGHT_DIRECTION,
    ambient: "float | np.ndarray" = 0.35,
    diffuse: "float | np.ndarray" = 0.65,
    background: np.ndarray | None = None,
    supersample: int = 1,
    cull_back_faces: bool = True,
    mask_faces: np.ndarray | None = None,
    specular: float = 0.0,
    shininess: float = 20.0,
    vertex_normals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a shaded triangle mesh seen by a pinhole camera.

    Args:
        vertices_cam: (N, 3) vertices in the camera frame (OpenCV axes), metres; all must have z > 0.
        faces: (F, 3) integer vertex indices, counter-clockwise seen from outside (see `rasterize`).
        K: (3, 3) intrinsics in pixels, pixel centres at integer coordinates.
        image_size: (height, width) of the output in pixels.
        vertex_colors: (N, 3) albedo in [0, 1]; light grey when None.
        light_direction: (3,) direction from the surface towards the light in the camera frame (normalised
            here), or (L, 3) for several lights; the default lights from above and in front.
        ambient: ambient light intensity (colour factor applied everywhere), or an RGB colour (3,).
        diffuse: Lambert light intensity (colour factor at normal incidence), one per light.
        background: (H, W, 3) uint8 image behind the mesh; black when None.
        supersample: render at `supersample` times the resolution and average the blocks, which gives
            anti-aliased, soft silhouette edges. 1 samples exactly the pixel centres.
        cull_back_faces: see `rasterize`.
        mask_faces: (F,) bool, the faces that count for `mask` and `depth` (e.g. a hand without the arm
            rendered with it); all faces when None. Faces outside it still occlude.
        specular, shininess: a white Blinn-Phong highlight (intensity, exponent; see `shade`); none at 0.
        vertex_normals: (N, 3) `compute_vertex_normals(vertices_cam, faces)` when the caller has them already.

    Returns:
        rgb: (H, W, 3) uint8 image.
        mask: (H, W) bool, pixels at least half covered by visible `mask_faces` (with `supersample=1`: the
            pixel centre).
        depth: (H, W) float32 camera-frame z in metres of the nearest surface sample in each masked pixel,
            inf where the mask is False.
    """
    height, width = _check_image_size(image_size)
    vertices_cam, faces, K = _check_mesh_and_camera(vertices_cam, faces, K)
    if vertex_colors is None:
        vertex_colors = np.full((len(vertices_cam), 3), 0.8)
    vertex_colors = np.asarray(vertex_colors, dtype=np.float64)
    if vertex_colors.shape != vertices_cam.shape:
        raise ValueError(
            f"vertex_colors must have shape {vertices_cam.shape} like vertices, got {vertex_colors.shape}"
        )
    light_direction = np.asarray(light_direction, dtype=np.float64)
    lights = np.atleast_2d(light_direction)
    if lights.ndim != 2 or lights.shape[1] != 3 or not (np.linalg.norm(lights, axis=1) > 0).all():
        raise ValueError(f"light_direction must be a non-zero (3,) vector or (L, 3) of them, got {light_direction!r}")
    if np.shape(diffuse) not in ((), (len(lights),)):
        raise ValueError(f"diffuse must be a float or one per light ({len(lights)},), got shape {np.shape(diffuse)}")
    if np.shape(ambient) not in ((), (3,)):
        raise ValueError(f"ambient must be a float or an RGB colour (3,), got shape {np.shape(ambient)}")
    if background is not None and (background.shape != (height, width, 3) or background.dtype != np.uint8):
        raise ValueError(
            f"background must be a ({height}, {width}, 3) uint8 image, got {background.shape} {background.dtype}"
        )
    check_positive_int("supersample", supersample)
    if mask_faces is None:
        mask_faces = np.ones(len(faces), dtype=bool)
    mask_faces = np.asarray(mask_faces)
    if mask_faces.shape != (len(faces),) or mask_faces.dtype != bool:
        raise ValueError(
            f"mask_faces must be a bool array of shape ({len(faces)},), got {mask_faces.shape} {mask_faces.dtype}"
        )

    rgb = np.zeros((height, width, 3)) if background is None else background / 255.0
    mask = np.zeros((height, width), dtype=bool)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    window = _mesh_window(vertices_cam, faces, K, height, width)
    if window is None:
        return np.round(rgb * 255.0).astype(np.uint8), mask, depth

    # Render only the pixels the mesh can reach, with the window's top-left pixel as the origin.
    x0, y0, x1, y1 = window
    K_window = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ K
    fine_size = ((y1 - y0) * supersample, (x1 - x0) * supersample)
    face_index, barycentric, fine_depth = rasterize(
        vertices_cam, faces, supersampled_intrinsics(K_window, supersample), fine_size, cull_back_faces
    )
    normals = compute_vertex_normals(vertices_cam, faces) if vertex_normals is None else vertex_normals
    light_direction = light_direction / np.linalg.norm(light_direction, axis=-1, keepdims=True)
    colors = shade(
        vertices_cam,
        faces,
        face_index,
        barycentric,
        vertex_colors,
        normals,
        light_direction,
        ambient,
        diffuse,
        specular,
        shininess,
    )

    covered = face_index >= 0
    coverage = _block_mean(covered, supersample)
    foreground = _block_mean(colors, supersample)  # premultiplied by coverage
    rgb[y0:y1, x0:x1] = foreground + (1.0 - coverage[..., None]) * rgb[y0:y1, x0:x1]
    in_mask = covered & mask_faces[np.maximum(face_index, 0)]
    mask[y0:y1, x0:x1] = _block_mean(in_mask, supersample) >= 0.5
    nearest_depth = _block_min(np.where(in_mask, fine_depth, np.inf), supersample)
    depth[y0:y1, x0:x1] = np.where(mask[y0:y1, x0:x1], nearest_depth, np.inf)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8), mask, depth


def _mesh_window(
    vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, height: int, width: int
) -> tuple[int, int, int, int] | None:
    """Pixel window (x0, y0, x1, y1), end exclusive, holding every pixel the faces can touch; None if empty.

    A (sub-)pixel centre of pixel j lies within 1/2 of j, so pixels outside [floor(min), ceil(max)] of the
    projected vertices are never covered.
    """
    if len(faces) == 0:
        return None
    uv = project(vertices_cam[np.unique(faces)], K)
    x0, y0 = np.maximum(np.floor(uv.min(axis=0)), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(uv.max(axis=0)) + 1, [width, height]).astype(int)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` pixel blocks of an (H * factor, W * factor, ...) array, as float64."""
    total = sum(
        values[row::factor, column::factor].astype(np.float64) for row in range(factor) for column in range(factor)
    )
    return total / factor**2


def _block_min(values: np.ndarray, factor: int) -> np.ndarray:
    """Minimum over `factor` x `factor` pixel blocks of an (H * factor, W * factor) array."""
    blocks = [values[row::factor, column::factor] for row in range(factor) for column in range(factor)]
    return np.minimum.reduce(blocks)


def _check_image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    if len(image_size) != 2 or not all(isinstance(side, (int, np.integer)) and side > 0 for side in image_size):
        raise ValueError(f"image_size must be (height, width) positive integers, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def _check_mesh_and_camera(
    vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vertices_cam = np.asarray(vertices_cam, dtype=np.float64)
    faces = np.asarray(faces)
    K = np.asarray(K, dtype=np.float64)
    if vertices_cam.ndim != 2 or vertices_cam.shape[1] != 3:
        raise ValueError(f"vertices_cam must have shape (N, 3), got {vertices_cam.shape}")
    if not np.isfinite(vertices_cam).all():
        raise ValueError("vertices_cam contains NaN or inf")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {faces.shape} {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices_cam)):
        raise ValueError(f"faces index vertices outside [0, {len(vertices_cam)}): range {faces.min()}..{faces.max()}")
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"K must be a finite (3, 3) matrix, got shape {K.shape}")
    used = np.unique(faces)
    nearest = vertices_cam[used, 2].min() if used.size else np.inf
    if nearest <= 0:
        raise ValueError(f"every vertex of a face must be in front of the camera (z > 0), got min z {nearest:.4g} m")
    return vertices_cam, faces.astype(np.int64), K
