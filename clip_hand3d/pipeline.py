"""`HandMeshPipeline`: a full image in, every hand's keypoints, 3D joints and mesh out.

```python
from clip_hand3d import HandMeshPipeline

pipe = HandMeshPipeline.from_pretrained("outputs/clip-hand3d-tiny")   # detector="mediapipe" by default
hands = pipe("photo.jpg")                     # a path, a PIL image or a numpy array; one dict per hand
hands = pipe(image, boxes=[(120, 80, 260, 240)], is_left=[False])   # boxes given: no detector runs
hands = pipe(webcam_frame, mirrored=True)     # a mirrored selfie frame: handedness is the person's
hands = pipe(image, K=K)                      # the camera's intrinsics, when known: metric camera-frame meshes
```

One call: the image is converted once (`image_utils.rgb_image`: any mode, 16-bit, numpy; EXIF orientation
applied; size checked) -> the hands' boxes: the ones given, else the detector's, else (no detector) the whole image
as one hand -> the processor crops every hand (left hands mirrored) -> one batch through the network -> the
processor's `post_process` -> per hand a dict in the original image's pixels and metres.

The camera: every hand of an image is placed in one camera frame, the image's, with the intrinsics `K` given or,
when none is, `default_intrinsics` (focal length 0.8 x the longer side, about a phone's main camera); the hand's
distance comes from the processor's default bone length. So all hands of a photo can be shown together and their
meshes project onto the image where the network saw them.

Handedness: `is_left` is the person's hand. `mirrored=True` says the image is a mirror image (a selfie / webcam
frame as shown by most apps, Gradio's webcam by default), where a person's left hand looks like a right hand; the
network is given the hand as it looks (`is_left != mirrored`), so the mesh always matches the image as given.

The network may be the PyTorch model or any object called as `model(pixel_values=tensor (B, 3, S, S) float32)`
that returns `joints_uvd` (B, 21, 3), `vertices_uvd` (B, V, 3) and `faces` (F, 3) as attributes or keys (e.g. an
exported runtime): pass it as `model=`, or name a runtime registered with `register_runtime`.

`pipeline("hand-mesh-estimation", model=folder)` of transformers gives the same results through
`HandMeshEstimationPipeline`, registered when `clip_hand3d` is imported.
"""

import importlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from clip_hand3d.detection import HandDetection, HandDetector, make_detector
from clip_hand3d.image_utils import open_image, rgb_image
from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.variants import load_processor

TASK = "hand-mesh-estimation"
TIMING_NAMES = ("detection", "preprocess", "network", "post_process", "total")
# The assumed focal length of an image without intrinsics, as a fraction of its longer side in pixels: about 64
# degrees of view across the longer side, a phone's main camera or a webcam (a 26 mm full-frame equivalent lens).
DEFAULT_FOCAL_FRACTION = 0.8
# Where a hand's box came from (the result's `box_source`).
BOX_GIVEN, BOX_DETECTED, BOX_WHOLE_IMAGE = "given", "detector", "whole_image"

_RUNTIMES: dict[str, Callable[..., Any]] = {}


def register_runtime(name: str, loader: Callable[..., Any]) -> None:
    """Make `HandMeshPipeline.from_pretrained(..., runtime=name)` load its network with
    `loader(name_or_path, device=device)`, which returns a model-like object (see the module doc)."""
    if not isinstance(name, str) or not name or name == "torch":
        raise ValueError(f"a runtime name must be a non-empty string other than 'torch', got {name!r}")
    _RUNTIMES[name] = loader


def available_runtimes() -> list[str]:
    """ "torch" and the names given to `register_runtime`."""
    return ["torch", *sorted(_RUNTIMES)]


def _load_runtime(runtime: str, name_or_path: str, device: str | torch.device | None):
    if runtime not in _RUNTIMES:
        # The exported runtimes register themselves when their package is imported.
        try:
            importlib.import_module("clip_hand3d.export")
        except ImportError:
            pass
    if runtime not in _RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: available runtimes are {available_runtimes()}")
    return _RUNTIMES[runtime](name_or_path, device=device)


@dataclass
class HandMeshOutput:
    """Everything one call found: `hands` (one dict per hand, see `HandMeshPipeline.__call__`), the `timings_ms`
    of the image, its `image_size` (height, width) after EXIF orientation, whether the detector ran, and the
    network's input crops `pixel_values` (N, 3, S, S) in the hands' order (None without hands), e.g. to score
    sentences against them (`clip_hand3d.pose_text`)."""

    hands: list[dict]
    timings_ms: dict[str, float]
    image_size: tuple[int, int]
    detector_ran: bool = False
    pixel_values: torch.Tensor | None = None


@dataclass
class _Prepared:
    """One image between the stages: its hands' boxes and flags, and the processor's inputs."""

    image_size: tuple[int, int]
    boxes: list[tuple[float, float, float, float]]
    is_left: list[bool]
    K: np.ndarray
    K_assumed: bool
    scores: list[float | None]
    box_source: str
    mirrored: bool
    detector_ran: bool
    inputs: Mapping | None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _milliseconds(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _as_outputs(outputs):
    """A model output with `joints_uvd`, `vertices_uvd`, `faces` attributes (a mapping is wrapped)."""
    if isinstance(outputs, Mapping):
        return SimpleNamespace(**outputs)
    return outputs


def _model_device_and_dtype(model) -> tuple[torch.device | None, torch.dtype | None]:
    if isinstance(model, torch.nn.Module):
        parameter = next(model.parameters(), None)
        if parameter is not None:
            return parameter.device, parameter.dtype
    return None, None


def default_intrinsics(image_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) intrinsics assumed for an image of `image_size` (height, width) pixels without its own: focal length
    `DEFAULT_FOCAL_FRACTION` x the longer side, principal point at the image centre (pixel centres at integers)."""
    height, width = image_size
    focal = DEFAULT_FOCAL_FRACTION * max(height, width)
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])


def _check_intrinsics(K) -> np.ndarray:
    if isinstance(K, torch.Tensor):
        K = K.detach().cpu().numpy()
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must be finite (3, 3) intrinsics with positive focal lengths, got {K.tolist()}")
    return K


def _check_boxes(boxes) -> list[tuple[float, float, float, float]]:
    """None is handled by the caller; one box (4,) or N boxes ((N, 4), a list of (4,)) -> N float tuples."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"boxes must be one box (x1, y1, x2, y2) or a list of boxes, got {boxes!r}") from error
    if array.ndim == 1 and array.shape == (4,):
        array = array[None]
    if array.size == 0:
        return []
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be one box (x1, y1, x2, y2) or a list of boxes, got shape {array.shape}")
    for index, box in enumerate(array):
        if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(
                f"box {index} must be finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box.tolist()}"
            )
    return [tuple(float(value) for value in box) for box in array]


def _check_is_left(is_left, count: int) -> list[bool] | None:
    """None, one bool for every hand, or one per hand -> `count` bools (None stays None)."""
    if is_left is None:
        return None
    if isinstance(is_left, bool | np.bool_):
        return [bool(is_left)] * count
    flags = list(np.atleast_1d(np.asarray(is_left)))
    if len(flags) != count or not all(isinstance(flag, bool | np.bool_) or flag in (0, 1) for flag in flags):
        raise ValueError(f"is_left must be one bool or one per hand ({count}), got {is_left!r}")
    return [bool(flag) for flag in flags]


class HandMeshPipeline:
    """Full images -> every hand's 2D keypoints, 3D joints and mesh.

    Args:
        model: the network: a `CLIPHand3DModel` or any model-like object (see the module doc).
        processor: the `CLIPHand3DProcessor` saved with the model (its crops and uvd space).
        detector: None (no detector), "mediapipe" or any object with `detect(image, mirrored)` (`HandDetector`).
        max_image_pixels: the largest image accepted (None: `clip_hand3d.image_utils.MAX_IMAGE_PIXELS`).

    Thread-safe for inference: the model is only read, and the MediaPipe detector serialises its own calls.
    """

    def __init__(
        self,
        model,
        processor: CLIPHand3DProcessor,
        detector: "str | HandDetector | None" = None,
        max_image_pixels: int | None = None,
    ):
        if not callable(model):
            raise ValueError(f"model must be callable as model(pixel_values=...), got {type(model).__name__}")
        if not hasattr(processor, "image_processor") or not hasattr(processor, "post_process"):
            raise ValueError(f"processor must be a CLIPHand3DProcessor, got {type(processor).__name__}")
        if max_image_pixels is not None and (
            isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 4
        ):
            raise ValueError(f"max_image_pixels must be None or an int of at least 4, got {max_image_pixels!r}")
        self.model = model
        self.processor = processor
        self.detector = make_detector(detector)
        self.max_image_pixels = max_image_pixels

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        detector: "str | HandDetector | None" = "mediapipe",
        model=None,
        runtime: str | None = None,
        device: str | torch.device | None = None,
        max_image_pixels: int | None = None,
        detector_options: Mapping | None = None,
        **from_pretrained_kwargs,
    ) -> "HandMeshPipeline":
        """The pipeline of a saved model (a folder or a Hub repo id holding the model and its processor).

        Args:
            name_or_path: the model's folder or Hub repo id (`train.py`'s output folder).
            detector: "mediapipe" (default; needs `pip install "clip-hand3d[detect]"`), None (the given boxes or
                the whole image) or any `HandDetector`.
            model: a ready model-like object to use instead of loading the PyTorch model (its processor is still
                read from `name_or_path`).
            runtime: None or "torch" for the PyTorch model, or a name given to `register_runtime`.
            device: where the PyTorch model runs (default: CPU), or what the runtime's loader is given.
            max_image_pixels: see the class.
            detector_options: keyword arguments of the named detector, e.g. `{"max_num_hands": 4}`.
            from_pretrained_kwargs: for `CLIPHand3DModel.from_pretrained` (e.g. `revision`, `dtype`).
        """
        name_or_path = os.fspath(name_or_path)
        if model is not None and runtime not in (None, "torch"):
            raise ValueError("give model= or runtime=, not both")
        config = None
        if model is None and runtime in (None, "torch"):
            model = CLIPHand3DModel.from_pretrained(name_or_path, with_text_model=False, **from_pretrained_kwargs)
            model = model.to(device or "cpu").eval()
            config = model.config
        elif model is None:
            model = _load_runtime(runtime, name_or_path, device)
        if config is None:
            config = getattr(model, "config", None)
        if not isinstance(config, CLIPHand3DConfig):
            config = CLIPHand3DConfig.from_pretrained(name_or_path)
        processor = load_processor(name_or_path, config)
        detector = make_detector(detector, **dict(detector_options or {}))
        return cls(model, processor, detector=detector, max_image_pixels=max_image_pixels)

    def __call__(self, image, boxes=None, is_left=None, mirrored: bool = False, K=None) -> list[dict]:
        """Every hand of one image.

        Args:
            image: a PIL image (any mode; EXIF orientation applied), a numpy array ((H, W), (H, W, 1|3|4) of
                uint8, uint16 or float in [0, 1]) or the path of an image file.
            boxes: None (the detector finds the hands; without one the whole image is one hand), one box
                (x1, y1, x2, y2) in pixels or a list of them (then no detector runs; [] means no hands).
            is_left: None (the detector's handedness; a right hand for given boxes and the whole image), one
                bool for every hand (overrides the detector's), or one bool per given box.
            mirrored: the image is a mirror image (selfie / webcam frame): `is_left` is still the person's hand.
            K: (3, 3) intrinsics of the image in pixels (pixel centres at integers), or None for
                `default_intrinsics`.

        Returns:
            One dict per hand (best detector score first): `box` (x1, y1, x2, y2) pixels; `is_left`; `score` (the
            detector's confidence; None for given boxes and the whole image); `keypoints_2d` (21, 2) pixels of
            the original image; `joints_3d` (21, 3) and `vertices_3d` (V, 3), metres, root-relative (wrist at
            0), camera axes of the image as given; `joints_cam` (21, 3) and `vertices_cam` (V, 3), metres, in the
            camera frame of `K` (OpenCV axes: x right, y down, z forward); `K` (3, 3), the intrinsics used, and
            `K_assumed` (True when they are `default_intrinsics`); `faces` (F, 3) int; `box_source` ("given", "detector" or
            "whole_image"); `whole_image` (True when the whole image was taken as one hand: no boxes and no
            detector); `mirrored`; `timings_ms` of the image (shared by its hands): `detection`, `preprocess`
            (crops), `network`, `post_process`, `total`.

        Raises:
            ValueError: not an image, an empty or 1-pixel-wide image, one over `max_image_pixels`, bad boxes or
                flags.
        """
        return self.predict(image, boxes=boxes, is_left=is_left, mirrored=mirrored, K=K).hands

    def predict(self, image, boxes=None, is_left=None, mirrored: bool = False, K=None) -> HandMeshOutput:
        """Like `__call__`, with the image's timings and size also when no hand was found."""
        start = time.perf_counter()
        prepared = self.prepare(image, boxes=boxes, is_left=is_left, mirrored=mirrored, K=K)
        outputs = self.forward(prepared)
        hands = self.finish(prepared, outputs)
        prepared.timings_ms["total"] = _milliseconds(start)
        pixel_values = None if prepared.inputs is None else prepared.inputs["pixel_values"]
        return HandMeshOutput(
            hands, dict(prepared.timings_ms), prepared.image_size, prepared.detector_ran, pixel_values
        )

    def load_image(self, image) -> PIL.Image.Image:
        """The RGB PIL image the pipeline works on (EXIF orientation applied, size checked); paths are opened."""
        if isinstance(image, str | os.PathLike):
            image = open_image(image, max_pixels=self.max_image_pixels)
        return rgb_image(image, "image", self.max_image_pixels)

    def detect(self, rgb: np.ndarray, mirrored: bool = False) -> list[HandDetection]:
        """The detector's hands in an (H, W, 3) uint8 RGB array; [] without a detector."""
        if self.detector is None:
            return []
        return list(self.detector.detect(rgb, mirrored=mirrored))

    def prepare(self, image, boxes=None, is_left=None, mirrored: bool = False, K=None) -> _Prepared:
        """Stage 1: the image, its hands (given, detected or the whole image) and the processor's crops."""
        if not isinstance(mirrored, bool | np.bool_):
            raise ValueError(f"mirrored must be a bool, got {mirrored!r}")
        mirrored = bool(mirrored)
        timings = dict.fromkeys(TIMING_NAMES, 0.0)
        rgb = self.load_image(image)
        image_size = (rgb.height, rgb.width)
        K_assumed = K is None
        K = default_intrinsics(image_size) if K is None else _check_intrinsics(K)
        scores: list[float | None]
        detector_ran = False
        if boxes is not None:
            box_list = _check_boxes(boxes)
            flags = _check_is_left(is_left, len(box_list)) or [False] * len(box_list)
            scores, source = [None] * len(box_list), BOX_GIVEN
        elif self.detector is not None:
            if is_left is not None and not isinstance(is_left, bool | np.bool_):
                raise ValueError(f"without boxes, is_left must be None or one bool for every hand, got {is_left!r}")
            start = time.perf_counter()
            detections = self.detect(np.asarray(rgb), mirrored=mirrored)
            timings["detection"] = _milliseconds(start)
            detector_ran = True
            box_list = [tuple(float(value) for value in detection.box) for detection in detections]
            flags = _check_is_left(is_left, len(box_list)) or [bool(d.is_left) for d in detections]
            scores, source = [float(detection.score) for detection in detections], BOX_DETECTED
        else:
            # The pixels cover (-0.5, -0.5, width - 0.5, height - 0.5): pixel centres sit at integers.
            height, width = image_size
            box_list = [(-0.5, -0.5, width - 0.5, height - 0.5)]
            flags = _check_is_left(is_left, 1) or [False]
            scores, source = [None], BOX_WHOLE_IMAGE
        inputs = None
        if box_list:
            start = time.perf_counter()
            # The whole image: the processor's box-less crop (the square around the image, margin 1).
            crop_boxes = [None] if source == BOX_WHOLE_IMAGE else box_list
            inputs = self.processor(
                images=[rgb] * len(box_list),
                boxes=crop_boxes,
                # The network sees the hand as it looks in the image.
                is_left=[flag != mirrored for flag in flags],
                max_image_pixels=self.max_image_pixels,
            )
            timings["preprocess"] = _milliseconds(start)
        return _Prepared(
            image_size, box_list, flags, K, K_assumed, scores, source, mirrored, detector_ran, inputs, timings
        )

    def forward(self, prepared: _Prepared):
        """Stage 2: all hands of the image through the network at once (None when there is no hand)."""
        if prepared.inputs is None:
            return None
        start = time.perf_counter()
        pixel_values = prepared.inputs["pixel_values"]
        device, dtype = _model_device_and_dtype(self.model)
        if device is not None:
            pixel_values = pixel_values.to(device=device, dtype=dtype if dtype.is_floating_point else None)
        with torch.inference_mode():
            outputs = _as_outputs(self.model(pixel_values=pixel_values))
        outputs = SimpleNamespace(
            joints_uvd=_float_cpu(getattr(outputs, "joints_uvd", None)),
            vertices_uvd=_float_cpu(getattr(outputs, "vertices_uvd", None)),
            faces=getattr(outputs, "faces", None),
        )
        prepared.timings_ms["network"] = _milliseconds(start)
        return outputs

    def finish(self, prepared: _Prepared, outputs) -> list[dict]:
        """Stage 3: the network's uvd predictions -> one dict per hand (see `__call__`)."""
        if prepared.inputs is None:
            return []
        start = time.perf_counter()
        bone_length = self.processor.image_processor.default_bone_length
        results = self.processor.post_process(outputs, prepared.inputs, K=prepared.K, bone_length=bone_length)
        prepared.timings_ms["post_process"] = _milliseconds(start)
        hands = []
        for index, result in enumerate(results):
            faces = np.asarray(result["faces"])
            hands.append(
                {
                    "box": prepared.boxes[index],
                    "is_left": prepared.is_left[index],
                    "score": prepared.scores[index],
                    "keypoints_2d": result["keypoints_2d"],
                    "joints_3d": result["joints_3d"],
                    "vertices_3d": result["vertices_3d"],
                    "joints_cam": result["joints_cam"],
                    "vertices_cam": result["vertices_cam"],
                    "K": prepared.K,
                    "K_assumed": prepared.K_assumed,
                    "faces": faces,
                    "box_source": prepared.box_source,
                    "whole_image": prepared.box_source == BOX_WHOLE_IMAGE,
                    "mirrored": prepared.mirrored,
                    "timings_ms": prepared.timings_ms,
                }
            )
        return hands

    def __repr__(self) -> str:
        return f"HandMeshPipeline(model={type(self.model).__name__}, detector={self.detector!r})"


def _float_cpu(value):
    """A tensor as float32 on the CPU (a bfloat16 model's outputs), anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32)
    return value


def hands_to_json(hands: Sequence[Mapping]) -> list[dict]:
    """The pipeline's hands with every array as nested lists: ready for `json.dumps`."""

    def plain(value):
        if isinstance(value, np.ndarray | torch.Tensor):
            return np.asarray(value).tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Mapping):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        return value

    return [plain(dict(hand)) for hand in hands]


class HandMeshEstimationPipeline(Pipeline):
    """transformers' `pipeline("hand-mesh-estimation", model=folder)`: a thin `Pipeline` over `HandMeshPipeline`
    (its `prepare` / `forward` / `finish` are this pipeline's preprocess / _forward / postprocess).

    `pipeline(..., detector=None | "mediapipe" | a HandDetector)` (default "mediapipe"); each call takes `boxes`,
    `is_left` and `mirrored` as `HandMeshPipeline.__call__` does and returns its list of hands. The model is loaded
    by transformers with its text tower; pass `model_kwargs={"with_text_model": False}` to leave it out of memory.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args, detector: "str | HandDetector | None" = "mediapipe", max_image_pixels=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError("hand-mesh-estimation needs the model's processor (processor_config.json)")
        self.model.eval()
        self.hand_mesh = HandMeshPipeline(self.model, self.processor, detector, max_image_pixels)

    def _sanitize_parameters(self, boxes=None, is_left=None, mirrored=None, K=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"unknown arguments {sorted(kwargs)}: hand-mesh-estimation takes boxes, is_left, mirrored, K"
            )
        preprocess = {"boxes": boxes, "is_left": is_left, "K": K}
        if mirrored is not None:
            preprocess["mirrored"] = mirrored
        return preprocess, {}, {}

    def preprocess(self, image, boxes=None, is_left=None, mirrored=False, K=None):
        prepared = self.hand_mesh.prepare(image, boxes=boxes, is_left=is_left, mirrored=mirrored, K=K)
        return {"prepared": prepared}

    def _forward(self, model_inputs):
        prepared = model_inputs["prepared"]
        return {"prepared": prepared, "outputs": self.hand_mesh.forward(prepared)}

    def postprocess(self, model_outputs):
        return self.hand_mesh.finish(model_outputs["prepared"], model_outputs["outputs"])


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=HandMeshEstimationPipeline, pt_model=CLIPHand3DModel, type="image"
)
