"""Pictures and 3D files of `HandMeshPipeline` results: the meshes over the photo, and .glb / .obj scenes.

    overlay = draw_hands(image, hands)        # PIL image: each hand's shaded mesh and 2D skeleton over the photo
    write_hands_glb(hands, "hands.glb")       # every hand in the image's camera frame, for a 3D viewer
    write_hands_obj(hands, "hands.obj")

The meshes are drawn with their camera-frame vertices (`vertices_cam`) and the image's intrinsics (`K`), so they
land where the network saw them; one colour per hand, the same in the overlay and the 3D files.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import trimesh

from clip_hand3d.data.rendering import render_mesh
from clip_hand3d.image_utils import rgb_image
from clip_hand3d.modeling.hand_joints import JOINT_PARENTS

# One colour per hand (RGB in [0, 1]), in the order of the pipeline's hands: colour-blind safe (Okabe-Ito).
HAND_COLORS = (
    (0.90, 0.62, 0.00),
    (0.34, 0.71, 0.91),
    (0.00, 0.62, 0.45),
    (0.80, 0.47, 0.65),
    (0.94, 0.89, 0.26),
    (0.84, 0.37, 0.00),
)
# How much of the mesh covers the photo where it is drawn (1: opaque).
MESH_OPACITY = 0.75
# Anti-aliasing: the mesh is rasterised at this many samples per pixel side.
SUPERSAMPLE = 2


def hand_color(index: int) -> tuple[float, float, float]:
    """The colour of the `index`-th hand, RGB in [0, 1]."""
    return HAND_COLORS[index % len(HAND_COLORS)]


def draw_hands(
    image, hands: Sequence[dict], mesh: bool = True, skeleton: bool = True, max_side: int | None = None
) -> PIL.Image.Image:
    """The image (RGB) with each hand's shaded mesh and its 2D skeleton drawn over it.

    Args:
        image: the image the hands were found in (PIL or numpy, as `HandMeshPipeline` takes it).
        hands: the pipeline's hands; the mesh needs `vertices_cam`, `faces` and `K`, the skeleton `keypoints_2d`.
        mesh: draw the meshes.
        skeleton: draw the 21 keypoints and the bones between them.
        max_side: a larger image is drawn downscaled to this longer side, pixels (None: full size).
    """
    picture = rgb_image(image, "image")
    if max_side is not None and max(picture.size) > max_side:
        factor = max_side / max(picture.size)
        size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
        hands = [scale_hand(hand, size[0] / picture.width) for hand in hands]
        picture = picture.resize(size, PIL.Image.Resampling.LANCZOS)
    if mesh and hands:
        picture = _draw_meshes(picture, hands)
    if skeleton:
        _draw_skeletons(picture, hands)
    return picture


def scale_hand(hand: dict, factor: float) -> dict:
    """The hand as seen in the image resized by `factor`: keypoints and intrinsics scaled (pixel centres at
    integers: x -> factor * (x + 0.5) - 0.5), the 3D points unchanged."""
    resize = np.array([[factor, 0.0, 0.5 * factor - 0.5], [0.0, factor, 0.5 * factor - 0.5], [0.0, 0.0, 1.0]])
    keypoints = np.asarray(hand["keypoints_2d"], dtype=np.float64) * factor + (0.5 * factor - 0.5)
    return {**hand, "keypoints_2d": keypoints, "K": resize @ np.asarray(hand["K"], dtype=np.float64)}


def _draw_meshes(picture: PIL.Image.Image, hands: Sequence[dict]) -> PIL.Image.Image:
    """All hands rendered at once (so nearer hands hide farther ones) and blended over the photo."""
    vertices, faces, colors = _hands_mesh(hands)
    in_front = vertices[:, 2] > 1e-3
    if not in_front.all():
        raise ValueError("every hand's vertices_cam must lie in front of the camera (z > 0)")
    photo = np.asarray(picture)
    rendered, mask, _ = render_mesh(
        vertices,
        faces,
        hands[0]["K"],
        photo.shape[:2],
        vertex_colors=colors,
        background=photo,
        supersample=SUPERSAMPLE,
    )
    blended = np.where(mask[..., None], MESH_OPACITY * rendered + (1 - MESH_OPACITY) * photo, photo)
    return PIL.Image.fromarray(np.round(blended).astype(np.uint8))


def _hands_mesh(hands: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One mesh of all hands: camera-frame vertices (N, 3) metres, faces (F, 3) and per-vertex colours (N, 3)."""
    K = np.asarray(hands[0]["K"])
    vertices, faces, colors, offset = [], [], [], 0
    for index, hand in enumerate(hands):
        if not np.allclose(np.asarray(hand["K"]), K):
            raise ValueError("all hands must share one camera (K): they come from one pipeline call")
        hand_vertices = np.asarray(hand["vertices_cam"], dtype=np.float64)
        hand_faces = _oriented_faces(np.asarray(hand["faces"]), bool(hand["is_left"]))
        vertices.append(hand_vertices)
        faces.append(hand_faces + offset)
        colors.append(np.tile(hand_color(index), (len(hand_vertices), 1)))
        offset += len(hand_vertices)
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(colors)


def _oriented_faces(faces: np.ndarray, is_left: bool) -> np.ndarray:
    """The faces wound counter-clockwise seen from outside: a left hand is a mirrored right hand, which flips the
    winding of the right-hand template's faces."""
    return faces[:, ::-1] if is_left else faces


def _draw_skeletons(picture: PIL.Image.Image, hands: Sequence[dict]) -> None:
    """Bones as lines and keypoints as dots, in each hand's colour, sized to the image."""
    draw = PIL.ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 250))
    for index, hand in enumerate(hands):
        points = np.asarray(hand["keypoints_2d"], dtype=np.float64)
        color = tuple(round(255 * channel * 0.6) for channel in hand_color(index))
        for joint, parent in enumerate(JOINT_PARENTS):
            if parent >= 0:
                draw.line([tuple(points[parent]), tuple(points[joint])], fill=color, width=width)
        radius = 1.5 * width
        for x, y in points:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255), outline=color)


def hands_scene(hands: Sequence[dict]) -> trimesh.Scene:
    """A trimesh scene of every hand in the image's camera frame, in glTF's axes (y up, the camera looking down
    -z): the OpenCV camera frame turned 180 degrees about x. Metres; one coloured mesh per hand."""
    scene = trimesh.Scene()
    to_gltf = np.diag([1.0, -1.0, -1.0])
    for index, hand in enumerate(hands):
        vertices = np.asarray(hand["vertices_cam"], dtype=np.float64) @ to_gltf
        faces = _oriented_faces(np.asarray(hand["faces"]), bool(hand["is_left"]))
        color = np.array([*hand_color(index), 1.0]) * 255
        mesh = trimesh.Trimesh(vertices, faces, vertex_colors=np.tile(color, (len(vertices), 1)), process=False)
        side = "left" if hand["is_left"] else "right"
        scene.add_geometry(mesh, geom_name=f"hand_{index}_{side}")
    return scene


def write_hands_glb(hands: Sequence[dict], path: str | Path) -> Path:
    """Write `hands_scene(hands)` as a binary glTF (.glb) file; returns its path."""
    return _write_scene(hands, path, "glb")


def write_hands_obj(hands: Sequence[dict], path: str | Path) -> Path:
    """Write every hand as one Wavefront .obj file (camera frame as `hands_scene`); returns its path."""
    return _write_scene(hands, path, "obj")


def _write_scene(hands: Sequence[dict], path: str | Path, file_type: str) -> Path:
    if not hands:
        raise ValueError("no hands to write")
    path = Path(path)
    data = hands_scene(hands).export(file_type=file_type)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path
