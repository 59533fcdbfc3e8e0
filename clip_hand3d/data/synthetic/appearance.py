"""The synthetic sample's colours: skin albedo per vertex (sRGB in [0, 1]) and a procedural background image."""

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter
from scipy.spatial import cKDTree

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


def _smooth_field(rng: np.random.Generator, points: np.ndarray, num_waves: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1] over points (N, 3) metres: the mean of random plane waves of 3-10 cm."""
    directions = rng.normal(size=(num_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(0.03, 0.10, size=num_waves)
    phases = rng.uniform(0, 2 * np.pi, size=num_waves)
    return np.sin(points @ (directions.T * 2 * np.pi / wavelengths) + phases).mean(axis=1)


NAIL_TONE = np.array([238, 200, 196]) / 255.0  # nail plates: pale pink, lighter than most skin
NAIL_LENGTH = 0.011  # metres from the fingertip along the finger's back
CREASE_DARKENING = 0.12  # skin folds at the finger joints (knuckle wrinkles, flexion creases)


def add_hand_details(
    rng: np.random.Generator, colors: np.ndarray, nail_weight: np.ndarray, crease_weight: np.ndarray
) -> np.ndarray:
    """The hand's albedo (778, 3) with nails (`nail_weight` in [0, 1] per vertex: 1 on the nail plates) and
    darker, redder creases at the finger joints (`crease_weight`), of random strength."""
    nail = rng.uniform(0.5, 0.9) * nail_weight[:, None]
    colors = colors + nail * (NAIL_TONE * rng.uniform(0.95, 1.05, size=3) - colors)
    crease = rng.uniform(0.5, 1.5) * CREASE_DARKENING * crease_weight[:, None]
    return np.clip(colors * (1.0 - crease * np.array([0.8, 1.0, 1.0])), 0.0, 1.0)


OCCLUSION_RADIUS = 0.02  # metres: surface within this distance in front of a vertex shades it
OCCLUSION_STRENGTH = 0.8


def ambient_occlusion(vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Per-vertex ambient light factor (N,) in [1 - OCCLUSION_STRENGTH, 1] for a posed mesh (metres): 1 in the
    open, darker where other surface lies in front of the vertex within `OCCLUSION_RADIUS` (between fingers,
    under curled fingers, in the palm of a fist). The occlusion is the mean over those neighbours of the cosine
    between the normal and the direction to them, fading with distance."""
    tree = cKDTree(vertices)
    pairs = tree.query_pairs(OCCLUSION_RADIUS, output_type="ndarray")
    occlusion = np.zeros(len(vertices))
    counts = np.zeros(len(vertices))
    offsets = vertices[pairs[:, 1]] - vertices[pairs[:, 0]]
    distances = np.maximum(np.linalg.norm(offsets, axis=1), 1e-9)
    falloff = 1.0 - distances / OCCLUSION_RADIUS
    for source, sign in ((0, 1.0), (1, -1.0)):
        cosine = np.einsum("pc,pc->p", normals[pairs[:, source]], sign * offsets) / distances
        np.add.at(occlusion, pairs[:, source], np.clip(cosine, 0.0, None) * falloff)
        np.add.at(counts, pairs[:, source], 1.0)
    occlusion = occlusion / np.maximum(counts, 1.0)
    return 1.0 - OCCLUSION_STRENGTH * np.clip(2.0 * occlusion, 0.0, 1.0)


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1], pulled towards grey by a random amount (muted as often as vivid)."""
    color = rng.uniform(0, 1, size=3)
    return color + rng.uniform(0, 0.7) * (color.mean() - color)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float linear gradient between two random colours in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    start, end = random_color(rng), random_color(rng)
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
    color_a, color_b = random_color(rng), random_color(rng)
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
    return base + weight * rng.uniform(0.3, 0.8) * (random_color(rng) - base)


def _draw_shapes(rng: np.random.Generator, image: PIL.Image.Image) -> None:
    """Draw 2-12 random filled rectangles, ellipses and polygons (and some lines) onto `image`, in place."""
    size = image.width
    draw = PIL.ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 13))):
        color = tuple(int(value) for value in np.round(random_color(rng) * 255))
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
        base = np.broadcast_to(random_color(rng), (image_size, image_size, 3))
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
