"""Keypoint estimators for HandCLR's mining: each turns crops of unlabeled hands into 21 2D keypoints (crop
pixels, pixel centres at integers), None where it finds no hand. `mediapipe` (MediaPipe Hands on the crop with
context around it), `model:DIR` (a trained clip-hand3d model) and `column:NAME` (keypoints already in the data,
e.g. the synthetic labels' `joints_uv`)."""

import numpy as np

from clip_hand3d.data.unlabeled import UnlabeledDataError, UnlabeledRow
from clip_hand3d.geometry import apply_affine
from clip_hand3d.modeling.hand_joints import NUM_JOINTS

# MediaPipe's palm detector is given this many times the crop's side about the same centre.
MEDIAPIPE_CONTEXT = 2.0


class KeypointEstimator:
    """Turns crops into 21 2D keypoints in crop pixels (pixel centres at integers), None where it finds no hand.

    `crop_size` is the side of the crops it is given; `needs_pixels` False: it reads the row and the crop's
    transform only (no image is decoded); `batch_size` crops per call. `spec` names it in the summary.
    """

    spec = "estimator"
    crop_size = 224
    needs_pixels = True
    batch_size = 1
    # The estimator is given crops of `context` x the crop's side about the same centre (more of the image around
    # the hand); its keypoints are moved back into the crop.
    context = 1.0

    # The constructor's keyword arguments, with which worker processes build their own copy (None: they cannot).
    arguments: dict | None = None

    def estimate(
        self, crops: list[np.ndarray | None], affines: list[np.ndarray], rows: list[UnlabeledRow]
    ) -> list[np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the estimator holds."""


class MediaPipeKeypoints(KeypointEstimator):
    """MediaPipe Hands (`clip_hand3d.detection.MediaPipeHandDetector`, static images) on each crop; the most
    confident hand's 21 landmarks.

    MediaPipe's palm detector finds more hands with some of the image around them: it is given `context` (2) x the
    crop (found on 25 of 48 synthetic frames at 2, 14 at 1: `docs/pretraining.md`).
    """

    def __init__(
        self,
        crop_size: int = 224,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        context: float = MEDIAPIPE_CONTEXT,
    ):
        from clip_hand3d.detection import MediaPipeHandDetector

        self.spec = "mediapipe"
        self.crop_size = int(crop_size)
        self.context = float(context)
        self.arguments = {
            "crop_size": crop_size,
            "model_complexity": model_complexity,
            "min_detection_confidence": min_detection_confidence,
            "context": context,
        }
        self.detector = MediaPipeHandDetector(
            max_num_hands=1, model_complexity=model_complexity, min_detection_confidence=min_detection_confidence
        )

    def estimate(self, crops, affines, rows):
        results = []
        for crop in crops:
            hands = _landmarks_and_scores(self.detector.detect_landmarks(np.ascontiguousarray(crop)))
            results.append(max(hands, key=lambda hand: hand[1])[0] if hands else None)
        return results

    def close(self) -> None:
        self.detector.close()


def _landmarks_and_scores(found) -> list[tuple[np.ndarray, float]]:
    """(landmarks, score) per hand of `MediaPipeHandDetector.detect_landmarks`' answer: a list of hands with
    `landmarks` and `score`, or (as before it had them) the tuple (landmarks, labels, scores)."""
    if isinstance(found, tuple) and len(found) == 3 and not hasattr(found, "landmarks"):
        landmarks, _, scores = found
        return list(zip(landmarks, scores, strict=True))
    return [(hand.landmarks, hand.score) for hand in found]


class ModelKeypoints(KeypointEstimator):
    """A trained clip-hand3d model (a folder or Hub id with its processor) on each crop: its `keypoints_2d`, the
    crop being the whole image it is given (the crops are made at the model's input size)."""

    def __init__(self, name_or_path: str, batch_size: int = 32, device: str = "cpu"):
        import torch

        from clip_hand3d.modeling import CLIPHand3DModel
        from clip_hand3d.variants import load_processor

        self.spec = f"model:{name_or_path}"
        self.arguments = {"name_or_path": name_or_path, "batch_size": batch_size, "device": device}
        self.torch = torch
        self.device = device
        self.model = CLIPHand3DModel.from_pretrained(name_or_path, with_text_model=False).to(device).eval()
        self.processor = load_processor(name_or_path, self.model.config)
        self.crop_size = int(self.processor.image_processor.image_size)
        self.batch_size = int(batch_size)

    def estimate(self, crops, affines, rows):
        inputs = self.processor(images=list(crops))
        with self.torch.inference_mode():
            outputs = self.model(pixel_values=inputs["pixel_values"].to(self.device))
        outputs.joints_uvd = outputs.joints_uvd.float().cpu()
        outputs.vertices_uvd = outputs.vertices_uvd.float().cpu()
        return [hand["keypoints_2d"] for hand in self.processor.post_process(outputs, inputs)]


class ColumnKeypoints(KeypointEstimator):
    """Keypoints read from a column of the rows: (21, 2) pixels of the row's image (e.g. the labels' `joints_uv`),
    moved into the crop (mirrored for left hands) as the image is. Rows whose value is None or not finite count as
    no hand."""

    needs_pixels = False

    def __init__(self, column: str, crop_size: int = 224):
        self.spec = f"column:{column}"
        self.arguments = {"column": column, "crop_size": crop_size}
        self.column = column
        self.crop_size = int(crop_size)
        self.batch_size = 256

    def estimate(self, crops, affines, rows):
        results = []
        for affine, row in zip(affines, rows, strict=True):
            value = row.columns[self.column]
            if value is None:
                results.append(None)
                continue
            try:
                points = np.asarray(value, dtype=np.float64).reshape(NUM_JOINTS, 2)
            except (TypeError, ValueError) as error:
                raise UnlabeledDataError(
                    f"{row.name}: column {self.column!r} must hold {NUM_JOINTS} x 2 keypoints (pixels), got "
                    f"{np.shape(value)}"
                ) from error
            results.append(apply_affine(points, affine) if np.isfinite(points).all() else None)
        return results


def make_keypoint_estimator(
    spec: str, crop_size: int = 224, batch_size: int = 32, device: str = "cpu"
) -> KeypointEstimator:
    """`mediapipe`, `model:DIR` or `column:NAME` -> its estimator."""
    kind, _, value = spec.partition(":")
    if spec == "mediapipe":
        return MediaPipeKeypoints(crop_size)
    if kind == "model" and value:
        return ModelKeypoints(value, batch_size=batch_size, device=device)
    if kind == "column" and value:
        return ColumnKeypoints(value, crop_size)
    raise ValueError(f"--keypoints {spec!r}: use mediapipe, model:DIR (a trained clip-hand3d model) or column:NAME")
