"""Writers of small fake datasets in the exact file layouts of the official releases.

The labels are made up but geometrically consistent: a hand skeleton of plausible proportions (metres), posed
at random, placed in front of a camera and projected with that camera's intrinsics into the image, where its
bones are drawn (and, for the sets with masks, its silhouette). The tests load these folders with the real
loaders, and a user can run a loader end to end without downloading anything.

Each writer takes the folder to write into, creates the release's top folder inside it (`FreiHAND_pub_v2`,
`RHD_published_v2`, `STB`, `real_world_testset`) and returns that folder, which is what the loader reads.
"""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import scipy.io
from scipy.spatial.transform import Rotation

from clip_hand3d.data.features import reference_bone_length
from clip_hand3d.data.freihand import FREIHAND_IMAGE_NAME, FREIHAND_RELEASE_FOLDER
from clip_hand3d.data.real_world import (
    REAL_WORLD_BOX_KEY,
    REAL_WORLD_CAMERA_KEY,
    REAL_WORLD_IMAGE_PATH_KEY,
    REAL_WORLD_PARAMS_FILE,
    REAL_WORLD_POSE_FILE,
    REAL_WORLD_POSE_KEY,
    REAL_WORLD_RELEASE_FOLDER,
    REAL_WORLD_UNIT_METRES,
)
from clip_hand3d.data.rhd import RHD_IMAGE_NAME, RHD_RELEASE_FOLDER, RHD_TO_FREIHAND
from clip_hand3d.data.stb import (
    PALM_CENTRE_PARTNER_JOINT,
    STB_COLOUR_K,
    STB_IMAGE_NAME,
    STB_LABEL_KEY,
    STB_SK_ROTATION_VECTOR,
    STB_SK_TRANSLATION_MM,
    STB_SPLITS,
    STB_TO_FREIHAND,
)
from clip_hand3d.geometry import project
from clip_hand3d.modeling.hand_joints import JOINT_PARENTS, NUM_VERTICES, ROOT_JOINT

# Right hand in its own frame (metres): wrist at the origin, palm in the x-y plane, fingers towards -y.
# Per finger (thumb, index, middle, ring, little): MCP position and the lengths of its three bones.
FINGER_BASES = np.array([[-0.030, -0.025], [-0.022, -0.085], [0.000, -0.090], [0.019, -0.085], [0.035, -0.075]])
FINGER_DIRECTIONS = np.array([[-0.70, -0.70], [-0.12, -1.0], [0.0, -1.0], [0.12, -1.0], [0.25, -1.0]])
BONE_LENGTHS = np.array(
    [[0.035, 0.030, 0.025], [0.040, 0.025, 0.020], [0.045, 0.028, 0.022], [0.042, 0.027, 0.021], [0.033, 0.020, 0.018]]
)
MAX_CURL_RADIANS = 0.5  # bend of each finger joint towards the palm side (+z)
MAX_TILT_RADIANS = 0.35  # out-of-plane rotation of the whole hand
VERTEX_NOISE_METRES = 0.006  # spread of the fake mesh vertices around the bones
HAND_SIZE_RANGE = (0.85, 1.15)  # random factor on all the lengths above
BONE_COLOUR = (230, 190, 160)  # RGB of the bones drawn into the images
BONE_COLOUR_TOLERANCE = 40  # largest difference per channel (JPEG) of a pixel still counted as bone
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}  # full-resolution colour: the thin bones keep their colour

# RHD: per split, which hands each fake sample shows ("both", "left" or "right"; the other hand is off-image).
RHD_FIXTURE_LAYOUTS = {"training": ("both", "right", "left"), "evaluation": ("right", "both")}
RHD_PERSON_ID = 1
RHD_MASK_BASE_IDS = {True: 2, False: 18}  # first mask id of the left (True) and right (False) hand
RHD_DEPTH_RANGE_METRES = 5.0  # RHD stores depth as 16 bits (R high byte, G low byte) over 0-5 m


def hand_joints_local(rng: np.random.Generator, is_left: bool = False) -> np.ndarray:
    """A random hand (21, 3) in its own frame, metres, FreiHAND order: wrist at the origin, fingers along -y,
    fingers curled at random, sized by a random factor in `HAND_SIZE_RANGE`."""
    joints = np.zeros((21, 3))
    for finger in range(5):
        direction = np.append(FINGER_DIRECTIONS[finger] / np.linalg.norm(FINGER_DIRECTIONS[finger]), 0.0)
        position = np.append(FINGER_BASES[finger], 0.0)
        joints[1 + 4 * finger] = position
        bend = 0.0
        for bone in range(3):
            bend += rng.uniform(0.0, MAX_CURL_RADIANS)
            step = np.append(direction[:2] * np.cos(bend), np.sin(bend))
            position = position + BONE_LENGTHS[finger, bone] * step
            joints[2 + 4 * finger + bone] = position
    if is_left:
        joints[:, 0] *= -1.0
    return joints * rng.uniform(*HAND_SIZE_RANGE)


def place_hand(rng: np.random.Generator, local_joints: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rotate a local hand at random (in-plane within +-45 degrees, small tilts) and centre it at `centre` (metres)."""
    angles = [rng.uniform(-MAX_TILT_RADIANS, MAX_TILT_RADIANS), rng.uniform(-MAX_TILT_RADIANS, MAX_TILT_RADIANS)]
    rotation = Rotation.from_euler("xyz", [*angles, rng.uniform(-np.pi / 4, np.pi / 4)]).as_matrix()
    joints = local_joints @ rotation.T
    return joints - joints.mean(axis=0) + np.asarray(centre, dtype=np.float64)


def fake_vertices(rng: np.random.Generator, joints: np.ndarray) -> np.ndarray:
    """778 points (metres) scattered along the bones of `joints` (21, 3): a stand-in for a MANO mesh."""
    children = rng.integers(1, 21, size=NUM_VERTICES)
    parents = np.asarray(JOINT_PARENTS)[children]
    along = rng.uniform(0.0, 1.0, size=(NUM_VERTICES, 1))
    points = joints[parents] + along * (joints[children] - joints[parents])
    return points + rng.normal(0.0, VERTEX_NOISE_METRES, size=points.shape)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole K (3, 3) with focal lengths (fx, fy) and principal point (cx, cy), pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _bones(uv: np.ndarray) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(parent pixel, child pixel) of the 20 bones of the joints uv (21, 2)."""
    return [(tuple(uv[parent]), tuple(uv[child])) for child, parent in enumerate(JOINT_PARENTS) if parent >= 0]


def draw_hand_image(size: tuple[int, int], uv: np.ndarray, background: tuple[int, int, int]) -> PIL.Image.Image:
    """An RGB image (width, height) with the hand's bones (uv (21, 2) pixels) drawn on a plain background."""
    image = PIL.Image.new("RGB", size, background)
    draw_bones(image, uv)
    return image


def draw_bones(image: PIL.Image.Image, uv: np.ndarray) -> None:
    """Draw the hand's bones and joints (uv (21, 2) pixels) in `BONE_COLOUR` into the RGB `image`."""
    draw = PIL.ImageDraw.Draw(image)
    radius = max(2, image.width // 32)
    for start, end in _bones(uv):
        draw.line([start, end], fill=BONE_COLOUR, width=2 * radius)
    for u, v in uv:
        draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=BONE_COLOUR)


def fraction_on_drawn_hand(image: PIL.Image.Image, joints_uv: np.ndarray) -> float:
    """Fraction of the joints (21, 2), pixels, FreiHAND order, and of the midpoints of their 20 bones that fall
    on the bones drawn by `draw_hand_image` in `image`.

    Labels that a loader reads correctly put all of them on the drawing; a wrong unit, frame or K moves them
    onto the background. (Fingers look alike: a wrong joint order is caught by comparing values, not by this.)
    """
    joints_uv = np.asarray(joints_uv, dtype=np.float64)
    midpoints = [(np.asarray(start) + np.asarray(end)) / 2 for start, end in _bones(joints_uv)]
    points = np.concatenate([joints_uv, midpoints])
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    height, width = pixels.shape[:2]
    columns, rows = np.rint(points).astype(np.int64).T
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    colours = pixels[rows[inside], columns[inside]]
    on_bone = (np.abs(colours - np.array(BONE_COLOUR)) <= BONE_COLOUR_TOLERANCE).all(axis=1)
    return float(on_bone.sum() / len(points))


def draw_hand_mask(
    size: tuple[int, int], uv: np.ndarray, mask: PIL.Image.Image | None = None, base_id: int = 255
) -> PIL.Image.Image:
    """An 8-bit mask (width, height) of the hand's bones, drawn over `mask` when given. With `base_id` 255 a
    binary mask; otherwise RHD's part ids: the palm gets `base_id`, the 20 bones the 15 ids after it."""
    mask = PIL.Image.new("L", size, 0) if mask is None else mask
    draw = PIL.ImageDraw.Draw(mask)
    radius = max(2, size[0] // 24)
    wrist = uv[ROOT_JOINT]
    draw.ellipse([wrist[0] - radius, wrist[1] - radius, wrist[0] + radius, wrist[1] + radius], fill=base_id)
    for bone, (start, end) in enumerate(_bones(uv)):
        part_id = base_id if base_id == 255 else base_id + 1 + bone * 15 // 20
        draw.line([start, end], fill=part_id, width=radius * 2)
    return mask


def _write_json(path: Path, value: object) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file)


def _freihand_split(
    folder: Path, split: str, rng: np.random.Generator, num_labels: int, num_versions: int, image_size: int
) -> None:
    (folder / split / "rgb").mkdir(parents=True, exist_ok=True)
    if split == "training":
        (folder / split / "mask").mkdir(parents=True, exist_ok=True)
    labels = {"K": [], "xyz": [], "verts": [], "scale": [], "mano": []}
    for label in range(num_labels):
        focal = rng.uniform(1.3, 1.7) * image_size
        K = intrinsics(focal, focal, image_size / 2, image_size / 2)
        joints = place_hand(rng, hand_joints_local(rng), [rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), 0.6])
        uv = project(joints, K)
        for version in range(num_versions):
            background = (40 + 50 * version, 90, 160 - 30 * version)
            image = draw_hand_image((image_size, image_size), uv, background)
            image.save(
                folder / split / "rgb" / FREIHAND_IMAGE_NAME.format(index=version * num_labels + label), **JPEG_OPTIONS
            )
        if split == "training":
            mask_path = folder / split / "mask" / FREIHAND_IMAGE_NAME.format(index=label)
            draw_hand_mask((image_size, image_size), uv).save(mask_path, **JPEG_OPTIONS)
        labels["K"].append(K.tolist())
        labels["xyz"].append(joints.tolist())
        labels["verts"].append(fake_vertices(rng, joints).tolist())
        labels["scale"].append(reference_bone_length(joints))
        labels["mano"].append([[0.0] * 61])
    for role, entries in labels.items():
        if split == "training" or role != "mano":
            _write_json(folder / f"{split}_{role}.json", entries)


def write_freihand(
    directory: str | os.PathLike,
    num_labels: int = 3,
    num_colour_versions: int = 4,
    num_evaluation: int = 2,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write `directory/FreiHAND_pub_v2` with a training split (`num_labels` labels, `num_colour_versions`
    images each: image i shows label i mod num_labels) and an evaluation split of `num_evaluation` images.

    Returns:
        The `FreiHAND_pub_v2` folder.
    """
    folder = Path(directory) / FREIHAND_RELEASE_FOLDER
    rng = np.random.default_rng(seed)
    _freihand_split(folder, "training", rng, num_labels, num_colour_versions, image_size)
    _freihand_split(folder, "evaluation", rng, num_evaluation, 1, image_size)
    return folder


def _rhd_hand(
    rng: np.random.Generator, is_left: bool, shown: bool, image_size: int, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (21, 3) metres in RHD's keypoint order, uv_vis (21, 3)) of one hand, on the image or off to its side."""
    side = -1.0 if is_left else 1.0
    centre_x = side * (0.07 if shown else 1.0)
    joints = place_hand(rng, hand_joints_local(rng, is_left), [centre_x, rng.uniform(-0.02, 0.02), 0.6])
    uv = project(joints, K)
    visible = shown & (uv >= 0).all(axis=1) & (uv < image_size).all(axis=1)
    rhd_order = np.argsort(RHD_TO_FREIHAND)
    return joints[rhd_order], np.column_stack([uv, visible])[rhd_order]


def _rhd_split(folder: Path, split: str, rng: np.random.Generator, layouts: tuple[str, ...], image_size: int) -> None:
    for kind in ("color", "mask", "depth"):
        (folder / split / kind).mkdir(parents=True, exist_ok=True)
    annotations = {}
    for sample_id, layout in enumerate(layouts):
        focal = rng.uniform(1.3, 1.6) * image_size
        K = intrinsics(focal, focal, image_size / 2, image_size / 2)
        shown = {True: layout in ("both", "left"), False: layout in ("both", "right")}
        hands = {is_left: _rhd_hand(rng, is_left, shown[is_left], image_size, K) for is_left in (True, False)}
        xyz = np.concatenate([hands[True][0], hands[False][0]])
        uv_vis = np.concatenate([hands[True][1], hands[False][1]])
        image = PIL.Image.new("RGB", (image_size, image_size), (70, 110, 60))
        mask = PIL.Image.new("L", (image_size, image_size), 0)
        PIL.ImageDraw.Draw(mask).rectangle([0, image_size - 8, 8, image_size - 1], fill=RHD_PERSON_ID)
        for is_left, (_, hand_uv_vis) in hands.items():
            if hand_uv_vis[:, 2].any():
                uv = hand_uv_vis[list(RHD_TO_FREIHAND), :2]
                draw_bones(image, uv)
                draw_hand_mask(image.size, uv, mask, RHD_MASK_BASE_IDS[is_left])
        name = RHD_IMAGE_NAME.format(sample_id=sample_id)
        image.save(folder / split / "color" / name)
        mask.save(folder / split / "mask" / name)
        depth = round(0.6 / RHD_DEPTH_RANGE_METRES * 65535)
        PIL.Image.new("RGB", image.size, (depth >> 8, depth & 255, 0)).save(folder / split / "depth" / name)
        annotations[sample_id] = {
            "xyz": xyz.astype(np.float32),
            "uv_vis": uv_vis.astype(np.float32),
            "K": K.astype(np.float32),
        }
    with open(folder / split / f"anno_{split}.pickle", "wb") as file:
        pickle.dump(annotations, file, protocol=2)


def write_rhd(
    directory: str | os.PathLike,
    image_size: int = 96,
    seed: int = 0,
    layouts: dict[str, tuple[str, ...]] = RHD_FIXTURE_LAYOUTS,
) -> Path:
    """Write `directory/RHD_published_v2` with one sample per entry of `layouts[split]`: "both" shows both hands,
    "left" / "right" only that hand (the other hand's keypoints lie off the image, invisible, unmasked).

    Returns:
        The `RHD_published_v2` folder.
    """
    folder = Path(directory) / RHD_RELEASE_FOLDER
    rng = np.random.default_rng(seed)
    for split, split_layouts in layouts.items():
        _rhd_split(folder, split, rng, split_layouts, image_size)
    return folder


def stb_hand_para(joints_xyz: np.ndarray) -> np.ndarray:
    """Joints (21, 3) in metres, colour camera frame, FreiHAND order -> one frame of `handPara` (3, 21): STB's
    order, palm centre as joint 0, millimetres in the label (depth camera) frame. The inverse of `stb_joints`."""
    fingers_first = np.array(joints_xyz, dtype=np.float64)
    fingers_first[ROOT_JOINT] = (joints_xyz[ROOT_JOINT] + joints_xyz[PALM_CENTRE_PARTNER_JOINT]) / 2.0
    stb_order = np.empty_like(fingers_first)
    stb_order[list(STB_TO_FREIHAND)] = fingers_first
    R = Rotation.from_rotvec(STB_SK_ROTATION_VECTOR).as_matrix()
    return (stb_order * 1000.0 @ R.T + STB_SK_TRANSLATION_MM).T


def write_stb(directory: str | os.PathLike, frames_per_sequence: int = 2, seed: int = 0) -> Path:
    """Write `directory/STB` with every SK label file of both splits (`frames_per_sequence` frames each) and the
    640x480 colour images `B*/SK_color_%d.png` (left hands, drawn with STB's colour intrinsics).

    Returns:
        The `STB` folder.
    """
    folder = Path(directory) / "STB"
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for sequence in STB_SPLITS["training"] + STB_SPLITS["evaluation"]:
        (folder / sequence).mkdir(exist_ok=True)
        frames = []
        for frame in range(frames_per_sequence):
            joints = place_hand(rng, hand_joints_local(rng, is_left=True), [rng.uniform(-0.05, 0.05), 0.0, 0.5])
            frames.append(stb_hand_para(joints))
            uv = project(joints, STB_COLOUR_K)
            draw_hand_image((640, 480), uv, (120, 100, 90)).save(
                folder / sequence / STB_IMAGE_NAME.format(frame=frame)
            )
        scipy.io.savemat(folder / "labels" / f"{sequence}_SK.mat", {STB_LABEL_KEY: np.stack(frames, axis=-1)})
    return folder


def write_real_world(directory: str | os.PathLike, num_images: int = 3, image_size: int = 64, seed: int = 0) -> Path:
    """Write `directory/real_world_testset`: `params.mat`, `pose_gt.mat` (centimetres) and `images/%05d.jpg`,
    each image the crop of a 640x480 camera's view inside a square box, resized to `image_size`.

    Returns:
        The `real_world_testset` folder.
    """
    folder = Path(directory) / REAL_WORLD_RELEASE_FOLDER
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names, cameras, boxes, poses = [], [], [], []
    for index in range(num_images):
        camera = np.array([rng.uniform(550, 650), rng.uniform(550, 650), 320.0, 240.0])
        joints = place_hand(rng, hand_joints_local(rng), [rng.uniform(-0.1, 0.1), rng.uniform(-0.05, 0.05), 0.55])
        uv = project(joints, intrinsics(*camera))
        centre, side = (uv.min(axis=0) + uv.max(axis=0)) / 2, 1.4 * (uv.max(axis=0) - uv.min(axis=0)).max()
        box = np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])
        crop_uv = (uv - box[:2]) * (image_size / side)
        name = f"images/{index:05d}.jpg"
        draw_hand_image((image_size, image_size), crop_uv, (60, 60, 90)).save(folder / name, **JPEG_OPTIONS)
        names.append(name)
        cameras.append(camera)
        boxes.append(box)
        poses.append(joints / REAL_WORLD_UNIT_METRES)
    scipy.io.savemat(
        folder / REAL_WORLD_PARAMS_FILE,
        {
            REAL_WORLD_IMAGE_PATH_KEY: np.array(names),
            REAL_WORLD_CAMERA_KEY: np.array(cameras),
            REAL_WORLD_BOX_KEY: np.array(boxes),
            "pose_root": np.array([pose[ROOT_JOINT] for pose in poses]),
            "pose_scale": np.array([[reference_bone_length(pose)] for pose in poses]),
        },
    )
    scipy.io.savemat(folder / REAL_WORLD_POSE_FILE, {REAL_WORLD_POSE_KEY: np.array(poses)})
    return folder
