"""The built-in synthetic hand data set: random hands of the package's parametric model, rendered on the CPU.

Every sample is a pure function of `(seed, split, index)`: its random generator is seeded from those three
numbers alone, so any subset of a data set can be regenerated on its own, in any order and in parallel, and
the "train" and "test" splits draw from disjoint streams.

One sample: an anatomically plausible pose and shape of `ParametricHand`, any global orientation (palm or back
of the hand to the camera, fingers up, down or sideways), a random pinhole camera (focal length 0.8-1.6 x the
image side, principal point near the centre), the hand 0.3-0.8 m in front of it with its box covering 35-90 %
of the image side, a forearm bent a little at the wrist (bare or in a sleeve, its cut end out of the image; left
out when it cannot be), a skin tone from light to dark (palms lighter) with smooth variation over the skin, a
random light, and a procedural background (gradients, low-frequency noise textures, stripes, rectangles,
ellipses, polygons) with sensor grain.
Labels are exact: the joints and vertices that were rendered, in the camera frame, in metres. The mask is the
hand's visible pixels (the forearm occludes it but is not part of it).

`load_synthetic` returns a `datasets.Dataset` in the shared schema (`HAND_FEATURES_WITH_MESH`),
`iter_synthetic` a streaming `datasets.IterableDataset`, and `write_synthetic_freihand` (the `make-synthetic`
command) writes the FreiHAND folder layout that `clip_hand3d.data.freihand.load_freihand` reads.
"""

import contextlib
import functools
import io
import itertools
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter
import torch
from datasets import Dataset, IterableDataset, Split
from datasets.fingerprint import Hasher
from scipy.spatial.transform import Rotation

from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH, make_hand_row
from clip_hand3d.data.freihand import FREIHAND_IMAGE_NAME, FREIHAND_SPLITS
from clip_hand3d.data.parametric_hand import ParametricHand
from clip_hand3d.data.rendering import compute_vertex_normals, render_mesh
from clip_hand3d.geometry import camera_after_affine, project

# Part of the cache key of `load_synthetic`: bump it when the samples change, so that caches are regenerated.
SYNTHETIC_DATA_VERSION = 1

# Disjoint random streams per split; FreiHAND's split names map to the same streams.
SPLIT_STREAMS = {"train": 0, "test": 1}
FREIHAND_SPLIT_STREAMS = {"training": "train", "evaluation": "test"}

FOCAL_RANGE = (0.8, 1.6)  # focal length over the image side
DEPTH_RANGE = (0.3, 0.8)  # metres from the camera to the centre of the hand's bounding box
BOX_FRACTION_RANGE = (0.35, 0.9)  # longer side of the hand box over the image side
PRINCIPAL_POINT_JITTER = 0.02  # standard deviation of the principal point around the centre, over the image side
BOX_OUTSIDE_FRACTION = 0.05  # the hand box may leave the image by this fraction of its side
MAX_CAMERA_TRIES = 100
PLACEMENT_ITERATIONS = 4
SUPERSAMPLE = 2
# zlib level of the PNGs in data set caches: 3-4 times faster to write than the default (6), ~15 % larger.
PNG_COMPRESS_LEVEL = 1
FREIHAND_LABEL_FILES = ("K", "xyz", "verts", "scale")  # {split}_{role}.json written per split
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}  # FreiHAND-layout images and masks: no chroma subsampling

# Skin albedos (sRGB, 0-255) from light to dark, and the albedo of palms and finger pads, which stay lighter.
SKIN_TONES = (
    np.array(
        [
            [250, 214, 190],
            [240, 192, 162],
            [226, 172, 136],
            [202, 146, 106],
            [172, 116, 80],
            [136, 88, 60],
            [102, 66, 46],
            [72, 46, 33],
        ]
    )
    / 255.0
)
PALMAR_TONE = np.array([236, 178, 150]) / 255.0
# Forearm cross-sections relative to the wrist's: distance from the wrist (m), width and thickness factors.
FOREARM_PROFILE = np.array([[0.0, 1.0, 1.0], [0.06, 1.18, 1.4], [0.3, 1.3, 1.6]])
FOREARM_LENGTH_RANGE = (0.25, 0.45)  # metres
FOREARM_EXTENSIONS = (0.6, 0.9, 1.2)  # metres: longer arms, tried in turn when the arm's end would show
FOREARM_END_RADIUS = 0.05  # metres: bounds the arm's (and sleeve's) radius at its end
# Arms pointing at the camera more steeply than this (z component of the arm's direction) are left out: they
# would come out of the camera and hide the hand behind their cut end.
MAX_ARM_TOWARDS_CAMERA = 0.5
FOREARM_BEND_DEGREES = (25.0, 15.0)  # largest wrist flexion and deviation between hand and forearm
SLEEVE_PROBABILITY = 0.5
SLEEVE_THICKNESS = 1.12  # sleeve cross-section over the arm's
MIN_DEPTH = 0.05  # metres: the forearm stays this far in front of the camera


@functools.cache
def hand_model() -> ParametricHand:
    """The parametric hand, built once per process."""
    return ParametricHand().eval()


@functools.cache
def hand_faces() -> np.ndarray:
    """The parametric hand's faces (1552, 3) int64, counter-clockwise seen from outside."""
    return hand_model().faces.numpy()


@functools.cache
def rest_hand_normals() -> np.ndarray:
    """Unit vertex normals (778, 3) of the mean hand in its rest frame (palm towards -z)."""
    hand = hand_model()
    return compute_vertex_normals(hand.template_vertices.double().numpy(), hand_faces())


@functools.cache
def wrist_ring_ids() -> np.ndarray:
    """Vertex ids of the ring around the wrist joint (the vertices the joint regressor averages for joint 0),
    in order around the ring."""
    return np.flatnonzero(hand_model().joint_regressor[0].numpy() > 0)


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run torch on one thread inside the block: one small hand per call gains nothing from intra-op threads
    (which cost tens of milliseconds on a busy machine), and data workers run in parallel processes."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(num_threads)


def sample_generator(seed: int, index: int, split: str = "train") -> np.random.Generator:
    """The random generator of sample `index` of `split`: a function of `(seed, split, index)` only."""
    _check_split(split)
    _check_seed(seed)
    if not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_STREAMS[split], int(index)]))


def random_rotation(rng: np.random.Generator) -> Rotation:
    """A rotation drawn uniformly from SO(3): a normalised Gaussian quaternion."""
    return Rotation.from_quat(rng.normal(size=4))


def sample_hand(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random right hand: pose, shape and a uniformly random orientation about the wrist; metres.

    Returns:
        vertices (778, 3), joints (21, 3) and the global rotation (3, 3) of the hand's rest frame; the wrist
        is at the origin.
    """
    hand = hand_model()
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rotation = random_rotation(rng)
    with torch.no_grad(), single_threaded_torch():
        finger_pose = hand.sample_pose(1, generator)
        shape = hand.sample_shape(1, generator)
        global_orient = torch.as_tensor(rotation.as_rotvec(), dtype=finger_pose.dtype)[None]
        vertices, joints = hand(global_orient, finger_pose, shape)
    return vertices[0].double().numpy(), joints[0].double().numpy(), rotation.as_matrix()


def sample_camera(rng: np.random.Generator, points: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random intrinsics and a translation that puts `points` (M, 3) 0.3-0.8 m in front of the camera.

    The focal length (over the image side) and the side of the hand box (over the image side) are drawn from
    `FOCAL_RANGE` and `BOX_FRACTION_RANGE`; the depth follows and is redrawn until it lies in `DEPTH_RANGE`.
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
        if DEPTH_RANGE[0] <= depth <= DEPTH_RANGE[1]:
            break
    depth = float(np.clip(depth, *DEPTH_RANGE))

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


def sample_skin_colors(rng: np.random.Generator, rest_vertices: np.ndarray, rest_normals: np.ndarray) -> np.ndarray:
    """Per-vertex skin albedo (N, 3) in [0, 1].

    A tone between two neighbours of `SKIN_TONES`; palms, finger pads and the inner forearm (normals towards
    -z in the rest frame) blend towards the lighter, pinker `PALMAR_TONE`; smooth variation in brightness and
    redness runs over the skin (plane waves of 3-10 cm over the rest-frame vertices, metres, so that the
    pattern moves with the skin).
    """
    position = rng.uniform(0, len(SKIN_TONES) - 1)
    lower = int(position)
    upper = min(lower + 1, len(SKIN_TONES) - 1)
    tone = SKIN_TONES[lower] + (position - lower) * (SKIN_TONES[upper] - SKIN_TONES[lower])
    tone = tone * rng.uniform(0.95, 1.05, size=3)
    palmar_tone = tone + rng.uniform(0.3, 0.6) * (PALMAR_TONE - tone)
    palmar = np.clip((-rest_normals[:, 2] - 0.1) / 0.6, 0.0, 1.0)
    palmar = palmar * palmar * (3 - 2 * palmar)
    colors = tone + palmar[:, None] * (palmar_tone - tone)
    brightness = 1.0 + 0.08 * _smooth_field(rng, rest_vertices)
    redness = 0.05 * _smooth_field(rng, rest_vertices)
    colors = colors * brightness[:, None] + redness[:, None] * np.array([1.0, -0.3, -0.4]) * colors
    return np.clip(colors, 0.0, 1.0)


def forearm_mesh(
    wrist_ring: np.ndarray, length: float, sleeve_start: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A forearm attached to the hand's wrist, in the hand's rest frame (metres, the arm along +y).

    Rings follow the wrist's cross-section (`wrist_ring`, (n, 3) at y = 0, in order around the ring), widened
    by `FOREARM_PROFILE`, from just inside the palm to `length`, closed by a fan at the far end. From
    `sleeve_start` (metres along the arm; inf for a bare arm) on, the rings are a sleeve, a little wider.

    Returns:
        vertices (M, 3), faces (K, 3) counter-clockwise seen from outside, sleeve (M,) bool.
    """
    stations = [-0.004] + list(length * np.array([0.1, 0.3, 0.55, 0.8, 1.0]))
    if sleeve_start < length:
        stations += [sleeve_start - 0.002, sleeve_start]
    stations = np.sort(stations)
    sleeve = stations >= sleeve_start
    thickness_factor = np.where(sleeve, SLEEVE_THICKNESS, 1.0)
    width = np.interp(stations, FOREARM_PROFILE[:, 0], FOREARM_PROFILE[:, 1]) * thickness_factor
    thickness = np.interp(stations, FOREARM_PROFILE[:, 0], FOREARM_PROFILE[:, 2]) * thickness_factor
    centre = wrist_ring.mean(axis=0)
    offsets = wrist_ring - centre
    rings = centre + offsets * np.stack([width, np.ones_like(width), thickness], axis=1)[:, None]
    rings[..., 1] = stations[:, None]
    num_rings, ring_size = rings.shape[:2]
    vertices = np.concatenate([rings.reshape(-1, 3), [[centre[0], length, centre[2]]]])

    ring_ids = np.arange(num_rings * ring_size).reshape(num_rings, ring_size)
    near, near_next = ring_ids[:-1], np.roll(ring_ids[:-1], -1, axis=1)
    far, far_next = ring_ids[1:], np.roll(ring_ids[1:], -1, axis=1)
    bands = np.concatenate([np.stack([near, far, near_next], -1), np.stack([near_next, far, far_next], -1)])
    cap = np.stack([ring_ids[-1], np.full(ring_size, len(vertices) - 1), np.roll(ring_ids[-1], -1)], axis=-1)
    faces = np.concatenate([bands.reshape(-1, 3), cap])
    # Orient outwards: the first band face's normal must point away from the arm's axis.
    a, b, c = vertices[faces[0]]
    if np.cross(b - a, c - a) @ (a - np.array([centre[0], a[1], centre[2]])) < 0:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces), np.append(np.repeat(sleeve, ring_size), sleeve[-1])


def _smooth_field(rng: np.random.Generator, points: np.ndarray, num_waves: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1] over points (N, 3) metres: the mean of random plane waves of 3-10 cm."""
    directions = rng.normal(size=(num_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(0.03, 0.10, size=num_waves)
    phases = rng.uniform(0, 2 * np.pi, size=num_waves)
    return np.sin(points @ (directions.T * 2 * np.pi / wavelengths) + phases).mean(axis=1)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1], pulled towards grey by a random amount (muted as often as vivid)."""
    color = rng.uniform(0, 1, size=3)
    return color + rng.uniform(0, 0.7) * (color.mean() - color)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float linear gradient between two random colours in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    start, end = _random_color(rng), _random_color(rng)
    return start + ramp[..., None] * (end - start)


def _noise_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float low-frequency noise (three octaves of bicubically upsampled random grids)
    mapped between two random colours, with a little independent colour noise per channel."""
    field = np.zeros((size, size, 3))
    amplitude = 1.0
    for octave in range(3):
        cells = int(rng.integers(2, 5)) * 2**octave
        grid = rng.uniform(0, 1, size=(3, cells, cells)).astype(np.float32)
        for channel in range(3):
            image = PIL.Image.fromarray(grid[channel]).resize((size, size), PIL.Image.Resampling.BICUBIC)
            field[..., channel] += amplitude * np.asarray(image)
        amplitude /= 2
    field = (field - field.min()) / max(field.max() - field.min(), 1e-6)
    shade = field.mean(axis=-1, keepdims=True)
    color_a, color_b = _random_color(rng), _random_color(rng)
    return color_a + shade * (color_b - color_a) + 0.3 * (field - shade)


def _stripes(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """`base` with soft stripes (or a checkerboard) of a random colour, period and direction blended in."""
    size = base.shape[0]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.03, 0.25) * size
    y, x = np.mgrid[0:size, 0:size]
    pattern = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    if rng.random() < 0.4:
        pattern = pattern * np.sin(2 * np.pi * (-x * np.sin(angle) + y * np.cos(angle)) / period)
    weight = np.clip(pattern * rng.uniform(1, 6), -1, 1)[..., None] * 0.5 + 0.5
    return base + weight * rng.uniform(0.3, 0.8) * (_random_color(rng) - base)


def _draw_shapes(rng: np.random.Generator, image: PIL.Image.Image) -> None:
    """Draw 2-12 random filled rectangles, ellipses and polygons (and some lines) onto `image`, in place."""
    size = image.width
    draw = PIL.ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 13))):
        color = tuple(int(value) for value in np.round(_random_color(rng) * 255))
        centre = rng.uniform(-0.1, 1.1, size=2) * size
        radii = rng.uniform(0.03, 0.35, size=2) * size
        kind = rng.integers(4)
        if kind == 0:
            draw.rectangle([*(centre - radii), *(centre + radii)], fill=color)
        elif kind == 1:
            draw.ellipse([*(centre - radii), *(centre + radii)], fill=color)
        elif kind == 2:
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 7))))
            corners = centre + radii * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            draw.polygon([tuple(corner) for corner in corners], fill=color)
        else:
            end = centre + rng.normal(size=2) * radii
            draw.line([tuple(centre), tuple(end)], fill=color, width=int(rng.integers(1, max(2, size // 20))))


def sample_background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """A procedural background (image_size, image_size, 3) uint8: a solid colour, gradient or noise texture,
    sometimes with stripes or a checkerboard, often with random shapes on top, sometimes blurred."""
    kind = rng.integers(3)
    if kind == 0:
        base = np.broadcast_to(_random_color(rng), (image_size, image_size, 3))
    elif kind == 1:
        base = _gradient(rng, image_size)
    else:
        base = _noise_texture(rng, image_size)
    if rng.random() < 0.3:
        base = _stripes(rng, base)
    image = PIL.Image.fromarray(np.round(np.clip(base, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.7:
        _draw_shapes(rng, image)
    if rng.random() < 0.3:
        image = image.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0) * image_size / 224))
    return np.asarray(image)


def sample_forearm(
    rng: np.random.Generator,
    hand_vertices: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    K: np.ndarray,
    image_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random forearm for a posed hand: bent at the wrist, with a sleeve half of the time, long enough that
    its cut end lies outside the image.

    The length is drawn from `FOREARM_LENGTH_RANGE` and, if the arm's end would show in the image, extended
    to the first of `FOREARM_EXTENSIONS` that takes it out (an arm and upper arm under a sleeve). Arms that
    point at the camera, that would come closer to it than `MIN_DEPTH`, or whose end stays in view (arms going
    away towards a vanishing point in the image) are left out.

    Args:
        rng: the sample's generator.
        hand_vertices: (778, 3) the posed hand before `translation` (wrist at the origin), metres.
        rotation: (3, 3) the hand's global rotation (`sample_hand`).
        translation: (3,) metres, the hand's placement in the camera frame (the wrist's position).
        K: (3, 3) intrinsics, pixels.
        image_size: side of the square image, pixels.

    Returns:
        vertices (M, 3) in the camera frame, faces (K, 3), rest-frame vertices (M, 3) and sleeve (M,) bool;
        all empty when the forearm is left out.
    """
    wrist_ring = hand_vertices[wrist_ring_ids()] @ rotation  # back to the rest frame (wrist bone is rigid)
    bend = Rotation.from_euler("xz", rng.uniform(-1, 1, size=2) * FOREARM_BEND_DEGREES, degrees=True).as_matrix()
    arm_to_camera = rotation @ bend
    axis = arm_to_camera[:, 1]  # unit direction of the arm in the camera frame
    sampled_length = rng.uniform(*FOREARM_LENGTH_RANGE)
    sleeve_start = rng.uniform(0.03, 0.15) if rng.random() < SLEEVE_PROBABILITY else np.inf
    if axis[2] >= -MAX_ARM_TOWARDS_CAMERA:
        for length in (sampled_length, *FOREARM_EXTENSIONS):
            end = translation + length * axis
            if end[2] - FOREARM_END_RADIUS < MIN_DEPTH:
                break
            end_uv = project(end[None], K)[0]
            end_radius = K[0, 0] * FOREARM_END_RADIUS / end[2]  # pixels
            if (end_uv < -end_radius).any() or (end_uv > image_size - 1 + end_radius).any():
                rest_vertices, faces, sleeve = forearm_mesh(wrist_ring, length, sleeve_start)
                return rest_vertices @ arm_to_camera.T + translation, faces, rest_vertices, sleeve
    return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3)), np.zeros(0, dtype=bool)


def sample_scene(rng: np.random.Generator, image_size: int = 224, p_left: float = 0.0) -> dict:
    """Everything random about one sample.

    Args:
        rng: the sample's generator (see `sample_generator`).
        image_size: side of the square image in pixels.
        p_left: probability that the sample is shown as a left hand (the rendered right hand, mirrored).

    Returns:
        A dict with `vertices_xyz` (778, 3) and `joints_xyz` (21, 3): the right hand in the camera frame,
        metres; `K` (3, 3) pixels; the mesh to render: `mesh_vertices` (the hand's 778 vertices first, then
        the forearm's), `mesh_faces`, `mask_faces` (True for the hand's faces), `vertex_colors` in [0, 1];
        `light_direction` (3,) (towards the light, camera frame), `ambient` and `diffuse` light intensities;
        `background` (S, S, 3) uint8; `grain` (S, S, 3) float32 sensor noise in 0-255 units; `is_left` bool.
    """
    vertices, joints, rotation = sample_hand(rng)
    K, translation = sample_camera(rng, np.concatenate([vertices, joints]), image_size)
    arm_vertices, arm_faces, arm_rest, sleeve = sample_forearm(rng, vertices, rotation, translation, K, image_size)

    hand_rest = hand_model().template_vertices.double().numpy()
    rest_vertices = np.concatenate([hand_rest, arm_rest])
    rest_normals = np.concatenate([rest_hand_normals(), compute_vertex_normals(arm_rest, arm_faces)])
    vertex_colors = sample_skin_colors(rng, rest_vertices, rest_normals)
    vertex_colors[len(hand_rest) :][sleeve] = _random_color(rng)
    vertex_colors *= rng.uniform(0.93, 1.07, size=3)  # the light's tint
    light_direction = rng.normal(size=3) + np.array([0.0, -0.3, -1.2])
    faces = hand_faces()
    return {
        "vertices_xyz": vertices + translation,
        "joints_xyz": joints + translation,
        "K": K,
        "mesh_vertices": np.concatenate([vertices + translation, arm_vertices]),
        "mesh_faces": np.concatenate([faces, arm_faces + len(vertices)]),
        "mask_faces": np.arange(len(faces) + len(arm_faces)) < len(faces),
        "vertex_colors": vertex_colors,
        "light_direction": light_direction / np.linalg.norm(light_direction),
        "ambient": rng.uniform(0.25, 0.5),
        "diffuse": rng.uniform(0.4, 0.85),
        "background": sample_background(rng, image_size),
        "grain": (rng.normal(size=(image_size, image_size, 3)) * rng.uniform(0, 4)).astype(np.float32),
        "is_left": bool(rng.random() < p_left),
    }


def render_scene(scene: dict, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a `sample_scene` (right hand, before any mirroring): rgb (S, S, 3) uint8 and the hand's mask
    (S, S) bool (the forearm occludes but is not part of the mask)."""
    rgb, mask, _ = render_mesh(
        scene["mesh_vertices"],
        scene["mesh_faces"],
        scene["K"],
        (image_size, image_size),
        vertex_colors=scene["vertex_colors"],
        light_direction=scene["light_direction"],
        ambient=scene["ambient"],
        diffuse=scene["diffuse"],
        background=scene["background"],
        supersample=SUPERSAMPLE,
        mask_faces=scene["mask_faces"],
    )
    rgb = np.clip(np.round(rgb + scene["grain"]), 0, 255).astype(np.uint8)
    return rgb, mask


def mirror_sample(
    rgb: np.ndarray, mask: np.ndarray, joints_xyz: np.ndarray, vertices_xyz: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an image left-right together with its labels: a right hand becomes a left hand.

    Pixel column `x` moves to `W - 1 - x`; points move to `(-x, y, z)` and the intrinsics to the camera that
    sees them there (`camera_after_affine`), so the projections move with the pixels.

    Returns:
        (rgb, mask, joints_xyz, vertices_xyz, K) mirrored.
    """
    width = rgb.shape[1]
    K_mirrored, rotation = camera_after_affine(np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]]), K)
    return (
        np.ascontiguousarray(rgb[:, ::-1]),
        np.ascontiguousarray(mask[:, ::-1]),
        joints_xyz @ rotation.T,
        vertices_xyz @ rotation.T,
        K_mirrored,
    )


def render_sample(index: int, seed: int = 0, image_size: int = 224, split: str = "train", p_left: float = 0.0) -> dict:
    """Sample `index` of the synthetic set `(seed, split)` as a row of `HAND_FEATURES_WITH_MESH`.

    The row holds the image and mask (PIL, mask 255 on the hand), the exact `joints_xyz` (21, 3) and
    `vertices_xyz` (778, 3) in metres in the camera frame, `K`, `joints_uv`, the tight `box` of the projected
    joints and vertices, `scale` (length of bone 9-10, metres) and `is_left`.
    """
    _check_image_size(image_size)
    _check_probability(p_left)
    scene = sample_scene(sample_generator(seed, index, split), image_size, p_left)
    rgb, mask = render_scene(scene, image_size)
    joints, vertices, K = scene["joints_xyz"], scene["vertices_xyz"], scene["K"]
    if scene["is_left"]:
        rgb, mask, joints, vertices, K = mirror_sample(rgb, mask, joints, vertices, K)
    return make_hand_row(
        image=PIL.Image.fromarray(rgb),
        joints_xyz=joints,
        K=K,
        is_left=scene["is_left"],
        vertices_xyz=vertices,
        mask=PIL.Image.fromarray(mask.astype(np.uint8) * 255),
    )


def generate_rows(indices: list[int] | None, seed: int, image_size: int, split: str, p_left: float) -> Iterator[dict]:
    """Yield `render_sample` rows for `indices` (all indices from 0 on when None), images as PNG bytes."""
    for index in itertools.count() if indices is None else indices:
        row = render_sample(index, seed, image_size, split, p_left)
        yield {**row, "image": _png_bytes(row["image"]), "mask": _png_bytes(row["mask"])}


def _png_bytes(image: PIL.Image.Image) -> dict:
    """`image` encoded for `datasets.Image` as a PNG with fast compression (lossless either way)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return {"bytes": buffer.getvalue(), "path": None}


def load_synthetic(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int = 224,
    split: str = "train",
    num_proc: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    p_left: float = 0.0,
) -> Dataset:
    """The synthetic hand set as a `datasets.Dataset` of `HAND_FEATURES_WITH_MESH` rows.

    Args:
        num_samples: number of rows (indices 0 .. num_samples - 1).
        seed: non-negative seed of the set; rows are a function of (seed, split, index).
        image_size: side of the square images in pixels.
        split: "train" or "test", disjoint random streams.
        num_proc: processes rendering in parallel (None: this one).
        cache_dir: where `datasets` caches the Arrow table (default `~/.cache/huggingface/datasets`); the
            same arguments load the cached table instead of rendering again.
        p_left: probability of a (mirrored) left hand per row.
    """
    _check_split(split)
    _check_seed(seed)
    _check_num_samples(num_samples)
    _check_image_size(image_size)
    _check_probability(p_left)
    gen_kwargs = {
        "indices": list(range(num_samples)),
        "seed": seed,
        "image_size": image_size,
        "split": split,
        "p_left": p_left,
    }
    return Dataset.from_generator(
        generate_rows,
        features=HAND_FEATURES_WITH_MESH,
        gen_kwargs=gen_kwargs,
        cache_dir=None if cache_dir is None else str(cache_dir),
        num_proc=num_proc,
        split=Split.TRAIN if split == "train" else Split.TEST,
        fingerprint=Hasher.hash({"gen_kwargs": gen_kwargs, "version": SYNTHETIC_DATA_VERSION}),
    )


def iter_synthetic(
    num_samples: int | None = None, seed: int = 0, image_size: int = 224, split: str = "train", p_left: float = 0.0
) -> IterableDataset:
    """The synthetic hand set as a streaming `datasets.IterableDataset` (rendered while iterating).

    Same rows as `load_synthetic` with the same arguments; endless when `num_samples` is None. With a
    `num_samples`, each index is a shard, so DataLoader workers render disjoint rows.
    """
    _check_split(split)
    _check_seed(seed)
    if num_samples is not None:
        _check_num_samples(num_samples)
    _check_image_size(image_size)
    _check_probability(p_left)
    indices = None if num_samples is None else list(range(num_samples))
    return IterableDataset.from_generator(
        generate_rows,
        features=HAND_FEATURES_WITH_MESH,
        gen_kwargs={"indices": indices, "seed": seed, "image_size": image_size, "split": split, "p_left": p_left},
        split=Split.TRAIN if split == "train" else Split.TEST,
    )


def _write_freihand_sample(task: tuple[int, int, int, str, Path]) -> dict:
    """Render sample `index` and write its image and mask as FreiHAND JPEGs; return its labels as lists."""
    index, seed, image_size, split, folder = task
    row = render_sample(index, seed, image_size, FREIHAND_SPLIT_STREAMS[split])
    name = FREIHAND_IMAGE_NAME.format(index=index)
    row["image"].save(folder / "rgb" / name, **JPEG_OPTIONS)
    row["mask"].save(folder / "mask" / name, **JPEG_OPTIONS)
    return {
        "K": row["K"].tolist(),
        "xyz": row["joints_xyz"].tolist(),
        "verts": row["vertices_xyz"].tolist(),
        "scale": row["scale"],
    }


def write_synthetic_freihand(
    out_dir: str | os.PathLike,
    num_samples: int,
    seed: int = 0,
    split: str = "training",
    image_size: int = 224,
    num_proc: int | None = None,
) -> Path:
    """Write `num_samples` synthetic right hands in FreiHAND's folder layout under `out_dir`.

    Writes `{split}/rgb/%08d.jpg`, `{split}/mask/%08d.jpg` and `{split}_K.json`, `{split}_xyz.json`,
    `{split}_verts.json`, `{split}_scale.json` (no MANO parameters: the hand is not MANO). There is one
    colour version per label, so read the training split with
    `load_freihand(out_dir, "training", num_colour_versions=1)`.

    Args:
        out_dir: the folder that becomes the `FreiHAND_pub_v2`-like root.
        num_samples: number of images.
        seed: the synthetic set's seed; "training" and "evaluation" use the disjoint "train" and "test" streams.
        split: "training" or "evaluation".
        image_size: side of the square images in pixels (FreiHAND's is 224).
        num_proc: processes rendering in parallel (None: this one).

    Returns:
        `out_dir` as a Path.

    Raises:
        FileExistsError: `out_dir` already holds files of `split` (a smaller set written over a larger one
            would leave images without labels).
    """
    if split not in FREIHAND_SPLITS:
        raise ValueError(f"split must be one of {FREIHAND_SPLITS}, got {split!r}")
    _check_seed(seed)
    _check_num_samples(num_samples)
    _check_image_size(image_size)
    out_dir = Path(out_dir)
    folder = out_dir / split
    existing = [
        path
        for path in [folder, *(out_dir / f"{split}_{role}.json" for role in FREIHAND_LABEL_FILES)]
        if path.exists()
    ]
    if existing:
        raise FileExistsError(
            f"{out_dir} already holds a FreiHAND {split} split ({', '.join(str(path) for path in existing)}); "
            "write into an empty folder, or delete these first"
        )
    for kind in ("rgb", "mask"):
        (folder / kind).mkdir(parents=True)
    tasks = [(index, seed, image_size, split, folder) for index in range(num_samples)]
    if num_proc is None or num_proc <= 1:
        labels = [_write_freihand_sample(task) for task in tasks]
    else:
        with multiprocessing.Pool(num_proc) as pool:
            labels = pool.map(_write_freihand_sample, tasks, chunksize=max(1, min(64, num_samples // (4 * num_proc))))
    for role in FREIHAND_LABEL_FILES:
        with open(out_dir / f"{split}_{role}.json", "w", encoding="utf-8") as file:
            json.dump([label[role] for label in labels], file)
    return out_dir


def _check_seed(seed: int) -> None:
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_split(split: str) -> None:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")


def _check_num_samples(num_samples: int) -> None:
    if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")


def _check_image_size(image_size: int) -> None:
    if not (isinstance(image_size, (int, np.integer)) and image_size >= 16):
        raise ValueError(f"image_size must be an integer of at least 16 pixels, got {image_size!r}")


def _check_probability(p_left: float) -> None:
    if not 0.0 <= p_left <= 1.0:
        raise ValueError(f"p_left must be a probability in [0, 1], got {p_left!r}")
