"""How real the synthetic hands look, measured: a model trained on real photos (MediaPipe Hands) reads them, and
their skeletons are compared with measured human hands.

Two kinds of number (`probe_realism` computes all of them; `benchmarks/realism_probe.py` prints them):

- MediaPipe Hands in static-image mode at its default detection confidence (0.5): the share of images in which it
  finds a hand, and the PA-MPJPE (millimetres, Procrustes with scale, as `clip_hand3d.metrics`) of its metric
  world landmarks against the rendered joints, over all found hands and per joint. On real photos with 3D labels
  MediaPipe finds 99.5 % of the hands and reads them within 11.3 mm (issue 13's measurement on 583 photos).
- Bone ratios: each joint-to-joint length of the rendered skeletons over the wrist-to-middle-MCP length, against
  the same ratios of measured hands (`REFERENCE_BONE_RATIOS`, from `hand_anthropometry`).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import PIL.ImageDraw

from clip_hand3d.data.synthetic.render import render_sample
from clip_hand3d.detection import MediaPipeHandDetector
from clip_hand3d.metrics import point_errors, procrustes_align
from clip_hand3d.modeling.hand_anthropometry import REFERENCE_BONE_RATIOS
from clip_hand3d.modeling.hand_joints import JOINT_NAMES

# The bones of `bone_ratios`, as (name, joint, joint): the 20 segments of the skeleton (wrist to each finger's
# first joint, then along the finger) and the spacing of neighbouring MCP joints.
BONES = (
    ("wrist-thumb CMC", 0, 1),
    ("thumb metacarpal", 1, 2),
    ("thumb proximal", 2, 3),
    ("thumb distal", 3, 4),
    ("wrist-index MCP", 0, 5),
    ("index proximal", 5, 6),
    ("index middle", 6, 7),
    ("index distal", 7, 8),
    ("wrist-middle MCP", 0, 9),
    ("middle proximal", 9, 10),
    ("middle middle", 10, 11),
    ("middle distal", 11, 12),
    ("wrist-ring MCP", 0, 13),
    ("ring proximal", 13, 14),
    ("ring middle", 14, 15),
    ("ring distal", 15, 16),
    ("wrist-little MCP", 0, 17),
    ("little proximal", 17, 18),
    ("little middle", 18, 19),
    ("little distal", 19, 20),
    ("index-middle MCP", 5, 9),
    ("middle-ring MCP", 9, 13),
    ("ring-little MCP", 13, 17),
)
BONE_NAMES = tuple(name for name, _, _ in BONES)
# The skeleton's lines on the contact sheet: wrist to each finger's base, then along each finger.
_SKELETON = [(0, 1 + 4 * finger) for finger in range(5)] + [
    (1 + 4 * finger + k, 2 + 4 * finger + k) for finger in range(5) for k in range(3)
]
_REFERENCE_BONE = BONES.index(("wrist-middle MCP", 0, 9))


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Lengths (..., len(BONES)) of `BONES` for joints (..., 21, 3), in the joints' unit.

    The wrist-to-thumb-CMC length is measured in the palm's plane (through the wrist and the index and little
    MCP joints), as the published location of the CMC joint is (along the hand and across it, no depth).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[-2:] != (len(JOINT_NAMES), 3):
        raise ValueError(f"joints must have shape (..., {len(JOINT_NAMES)}, 3), got {joints.shape}")
    starts = joints[..., [start for _, start, _ in BONES], :]
    ends = joints[..., [end for _, _, end in BONES], :]
    lengths = np.linalg.norm(ends - starts, axis=-1)
    palm_normal = np.cross(joints[..., 5, :] - joints[..., 0, :], joints[..., 17, :] - joints[..., 0, :])
    palm_normal /= np.linalg.norm(palm_normal, axis=-1, keepdims=True)
    offset = joints[..., 1, :] - joints[..., 0, :]
    in_plane = offset - (offset * palm_normal).sum(-1, keepdims=True) * palm_normal
    lengths[..., BONE_NAMES.index("wrist-thumb CMC")] = np.linalg.norm(in_plane, axis=-1)
    return lengths


def bone_ratios(joints: np.ndarray) -> np.ndarray:
    """`bone_lengths` over the wrist-to-middle-MCP length (joint 0 to 9), (..., len(BONES)); 1 for that bone."""
    lengths = bone_lengths(joints)
    return lengths / lengths[..., _REFERENCE_BONE : _REFERENCE_BONE + 1]


@dataclass
class RealismReport:
    """What `probe_realism` measured on `num_images` synthetic images.

    Attributes:
        detection_rate: share of images in which MediaPipe found a hand.
        pa_mpjpe_mm: MediaPipe's mean PA-MPJPE over the found hands, millimetres (NaN when none was found).
        pa_mpjpe_per_joint_mm: (21,) the same per joint, FreiHAND order.
        bone_ratios: (len(BONES),) median `bone_ratios` of the rendered hands.
        reference_ratios: (len(BONES),) `REFERENCE_BONE_RATIOS` in `BONES` order.
        wrist_to_middle_mcp_mm: median length of the ratios' denominator, millimetres.
        render_images_per_second: rendering speed of this process (rendering only, MediaPipe excluded).
        detected: (num_images,) bool per image.
    """

    num_images: int
    image_size: int
    seed: int
    detection_rate: float
    pa_mpjpe_mm: float
    pa_mpjpe_per_joint_mm: np.ndarray
    bone_ratios: np.ndarray
    reference_ratios: np.ndarray
    wrist_to_middle_mcp_mm: float
    render_images_per_second: float
    detected: np.ndarray = field(repr=False)

    @property
    def bone_ratio_errors(self) -> np.ndarray:
        """Relative deviation of each median bone ratio from the reference, (len(BONES),)."""
        return self.bone_ratios / self.reference_ratios - 1.0

    def as_dict(self) -> dict:
        """Every number, JSON-ready (per-joint and per-bone values keyed by name)."""
        return {
            "num_images": self.num_images,
            "image_size": self.image_size,
            "seed": self.seed,
            "detection_rate": self.detection_rate,
            "pa_mpjpe_mm": self.pa_mpjpe_mm,
            "pa_mpjpe_per_joint_mm": dict(zip(JOINT_NAMES, self.pa_mpjpe_per_joint_mm.tolist(), strict=True)),
            "bone_ratios": {
                name: {"synthetic": float(ratio), "reference": float(reference)}
                for name, ratio, reference in zip(BONE_NAMES, self.bone_ratios, self.reference_ratios, strict=True)
            },
            "largest_bone_ratio_error": float(np.abs(self.bone_ratio_errors).max()),
            "wrist_to_middle_mcp_mm": self.wrist_to_middle_mcp_mm,
            "render_images_per_second": self.render_images_per_second,
            # Per image, so that two versions of the same hands can be compared pair by pair.
            "detected": self.detected.tolist(),
        }


def probe_realism(
    num_images: int = 300,
    seed: int = 777,
    image_size: int = 224,
    split: str = "train",
    detector: MediaPipeHandDetector | None = None,
) -> tuple[RealismReport, list[dict]]:
    """Render `num_images` synthetic hands of `(seed, split)` and measure them (see the module doc).

    Args:
        detector: a `clip_hand3d.detection.MediaPipeHandDetector` (default: a new one with MediaPipe's defaults:
            full landmark model, detection confidence 0.5, one hand per image).

    Returns:
        The report, and per image a dict {"row": the rendered row, "hand": the best `MediaPipeHand` or None}
        (for `contact_sheet`).
    """
    if detector is None:
        detector = MediaPipeHandDetector(max_num_hands=1)
    samples, errors, ratios, denominators = [], [], [], []
    render_seconds = 0.0
    for index in range(num_images):
        start = time.perf_counter()
        row = render_sample(index, seed=seed, image_size=image_size, split=split)
        render_seconds += time.perf_counter() - start
        joints = np.asarray(row["joints_xyz"], dtype=np.float64)
        ratios.append(bone_ratios(joints))
        denominators.append(bone_lengths(joints)[_REFERENCE_BONE])
        hands = detector.detect_landmarks(np.asarray(row["image"].convert("RGB")))
        hand = max(hands, key=lambda found: found.score) if hands else None
        if hand is not None:
            errors.append(point_errors(procrustes_align(hand.world_landmarks, joints), joints))
        samples.append({"row": row, "hand": hand})
    detected = np.array([sample["hand"] is not None for sample in samples])
    per_joint = np.mean(errors, axis=0) * 1000 if errors else np.full(len(JOINT_NAMES), np.nan)
    report = RealismReport(
        num_images=num_images,
        image_size=image_size,
        seed=seed,
        detection_rate=float(detected.mean()),
        pa_mpjpe_mm=float(per_joint.mean()),
        pa_mpjpe_per_joint_mm=per_joint,
        bone_ratios=np.median(ratios, axis=0),
        reference_ratios=np.array([REFERENCE_BONE_RATIOS[name] for name in BONE_NAMES]),
        wrist_to_middle_mcp_mm=float(np.median(denominators) * 1000),
        render_images_per_second=num_images / render_seconds,
        detected=detected,
    )
    return report, samples


def contact_sheet(samples: Sequence[dict], columns: int = 8, tile: int = 160) -> PIL.Image.Image:
    """The images of `probe_realism`'s samples in a grid, each with MediaPipe's landmarks drawn (green) or a red
    frame where it found no hand."""
    rows = -(-len(samples) // columns)
    sheet = PIL.Image.new("RGB", (columns * tile, rows * tile), "white")
    for position, sample in enumerate(samples):
        image = sample["row"]["image"].convert("RGB")
        factor = tile / image.width
        picture = image.resize((tile, round(image.height * factor)), PIL.Image.Resampling.BILINEAR)
        draw = PIL.ImageDraw.Draw(picture)
        hand = sample["hand"]
        if hand is None:
            draw.rectangle([0, 0, picture.width - 1, picture.height - 1], outline=(220, 30, 30), width=4)
        else:
            points = (hand.landmarks + 0.5) * factor - 0.5
            for start, end in _SKELETON:
                draw.line([tuple(points[start]), tuple(points[end])], fill=(40, 220, 60), width=2)
        sheet.paste(picture, ((position % columns) * tile, (position // columns) * tile))
    return sheet
