"""The CLIP-Hand3D demo (a Hugging Face Space): a photo or a webcam in, every hand's mesh out, and the pose in words.

    python spaces_demo/app.py --model outputs/clip-hand3d-tiny      # or CLIP_HAND3D_MODEL=DIR_OR_REPO
    python spaces_demo/app.py --model DIR --runtime onnxruntime     # an exported folder (`clip-hand3d export`)

Everything is done by the library (`HandMeshPipeline`, `clip_hand3d.visualization`, `clip_hand3d.pose_text`); this
file lays it out. The model is loaded once; requests share it (never copied) through a queue of bounded
concurrency and size.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import gradio as gr

from clip_hand3d import CLIPHand3DModel, HandMeshPipeline
from clip_hand3d.detection import make_detector
from clip_hand3d.pipeline import HandMeshOutput, hands_to_json
from clip_hand3d.pose_text import describe_pose, pose_text_scores, text_tower
from clip_hand3d.smoothing import HandSmoother
from clip_hand3d.visualization import draw_hands, write_hands_glb, write_hands_obj

MODEL_ENV = "CLIP_HAND3D_MODEL"
# What a model trained on the built-in synthetic hands can do on real photos (README, docs/synthetic.md).
REAL_PHOTOS_NOTE = (
    "A model trained only on the package's synthetic hands (the README's main command) is not accurate on real "
    "photos yet: on 583 real photos it scored 28.6 mm PA-MPJPE, worse than a constant average hand (21.4 mm). "
    "Models trained on FreiHAND (the paper's recipe, on a GPU) are made for real photos."
)
MAIN_JOB = "accelerate launch --cpu --num_processes 1 train.py --recipe recipes/synthetic_tiny_15min.json"
EXAMPLES_DIR = Path(__file__).parent / "examples"
# Overlays are drawn at most this large (longer side, pixels): a 12-megapixel photo draws as fast as a small one.
DISPLAY_MAX_SIDE = 1024
# Requests served at once, and waiting at most; more are turned away with "queue full".
CONCURRENCY, QUEUE_SIZE = 2, 64
# Webcam stream: seconds between the frames the browser sends.
STREAM_EVERY = 0.1
HAND_CHOICES = ("as detected", "left", "right")
AXIS_NAMES = ("left to right (x)", "top to bottom (y)", "near to far (z)")


class RequestFolders:
    """A fresh folder per request for its downloads; only the latest `keep` are kept (gradio has copied the
    files of earlier answers into its own cache by then)."""

    def __init__(self, keep: int = 4 * QUEUE_SIZE):
        self.root = Path(tempfile.mkdtemp(prefix="clip-hand3d-demo-"))
        self.folders: deque[Path] = deque()
        self.keep = keep
        self.lock = threading.Lock()

    def new(self) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.root))
        with self.lock:
            self.folders.append(folder)
            while len(self.folders) > self.keep:
                shutil.rmtree(self.folders.popleft(), ignore_errors=True)
        return folder


class HandMeshDemo:
    """The demo's handlers over one loaded model: photos, text against image, the webcam stream."""

    def __init__(self, model_path: str, runtime: str = "torch", detector: str | None = "mediapipe"):
        self.model_path = model_path
        self.runtime = runtime
        model = None
        if runtime == "torch":
            model = CLIPHand3DModel.from_pretrained(model_path).eval()  # with its text tower, to score sentences
        self.detecting = HandMeshPipeline.from_pretrained(model_path, detector=None, model=model, runtime=runtime)
        self.detector_missing = None
        if detector is not None:
            try:
                self.detecting.detector = make_detector(detector)
            except ImportError as error:  # the [detect] extra is not installed: boxes or the whole image only
                self.detector_missing = str(error)
        self.plain = HandMeshPipeline(self.detecting.model, self.detecting.processor, detector=None)
        self.model = model
        config = getattr(self.detecting.model, "config", None)
        self.text_tower = text_tower(config) if model is not None else None
        self.folders = RequestFolders()

    # Photos.
    def photo(self, image_path, use_detector: bool, box_text: str, hand_choice: str, mirrored: bool, num_joints):
        """One photo -> overlay, .glb, downloads, summary, sentences, and the text tab's state and choices."""
        if not image_path:
            raise gr.Error("Give a photo: upload one, paste one or take a webcam snapshot.")
        output, image = self._predict(image_path, use_detector, box_text, hand_choice, bool(mirrored))
        start = time.perf_counter()
        overlay = draw_hands(image, output.hands, max_side=DISPLAY_MAX_SIDE)
        files = self._write_files(output)
        drawing_ms = (time.perf_counter() - start) * 1000
        sentences = [describe_pose(hand["joints_cam"], int(num_joints)) for hand in output.hands]
        state = {"pixel_values": output.pixel_values, "sentences": sentences}
        choices = [f"hand {index + 1}" for index in range(len(output.hands))]
        first = sentences[0] if sentences else ("", "", "")
        return (
            overlay,
            files[0] if files else None,
            files,
            summary(output, drawing_ms),
            sentences_markdown(output.hands, sentences),
            state,
            gr.update(choices=choices, value=choices[0] if choices else None),
            *first,
        )

    def _predict(self, image_path, use_detector, box_text, hand_choice, mirrored) -> tuple[HandMeshOutput, object]:
        pipe = self.detecting if use_detector else self.plain
        try:
            image = pipe.load_image(image_path)
            boxes = parse_box(box_text)
            is_left = {"as detected": None, "left": True, "right": False}[hand_choice]
            return pipe.predict(image, boxes=boxes, is_left=is_left, mirrored=mirrored), image
        except ValueError as error:
            raise gr.Error(str(error)) from error

    def _write_files(self, output: HandMeshOutput) -> list[str]:
        if not output.hands:
            return []
        folder = self.folders.new()
        glb = write_hands_glb(output.hands, folder / "hands.glb")
        obj = write_hands_obj(output.hands, folder / "hands.obj")
        results = folder / "hands.json"
        payload = {
            "image_size": output.image_size,
            "timings_ms": output.timings_ms,
            "hands": hands_to_json(output.hands),
        }
        results.write_text(json.dumps(payload))
        return [str(glb), str(obj), str(results)]

    # Text against image.
    def sentences_of(self, state, hand_label):
        """The predicted sentences of the chosen hand, to fill the three text boxes."""
        index = hand_index(state, hand_label)
        return state["sentences"][index] if index is not None else ("", "", "")

    def score(self, state, hand_label, text_x: str, text_y: str, text_z: str):
        """The three per-axis scores of the user's sentences and of the hand's own predicted sentences."""
        if self.text_tower is None:
            raise gr.Error("This checkpoint has no text tower to score sentences with.")
        index = hand_index(state, hand_label)
        if index is None:
            raise gr.Error("Find the hands of a photo first (the Photo tab).")
        crop = state["pixel_values"][index : index + 1]
        yours = pose_text_scores(self.model, self.detecting.processor, crop, (text_x, text_y, text_z))
        predicted = pose_text_scores(self.model, self.detecting.processor, crop, tuple(state["sentences"][index]))
        return [
            [axis, round(float(a), 3), round(float(b), 3)]
            for axis, a, b in zip(AXIS_NAMES, yours, predicted, strict=True)
        ]

    # Webcam stream.
    def stream(self, frame, state):
        """One mirrored webcam frame -> its overlay with smoothed hands, and the frames per second."""
        if frame is None:
            return None, "", state
        state = state or {"smoother": HandSmoother(), "times": deque(maxlen=30)}
        now = time.perf_counter()
        try:
            output = self.detecting.predict(frame, mirrored=True)
        except ValueError as error:
            raise gr.Error(str(error)) from error
        hands = state["smoother"](output.hands, now)
        state["times"].append(now)
        times = state["times"]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        overlay = draw_hands(frame, hands, max_side=DISPLAY_MAX_SIDE)
        return (
            overlay,
            f"{len(hands)} hand{'s' if len(hands) != 1 else ''} · {fps:.1f} frames/s · network {output.timings_ms['network']:.0f} ms",
            state,
        )


def parse_box(text: str | None) -> list[tuple[float, ...]] | None:
    """ "x1, y1, x2, y2" (pixels) -> one box; empty -> None (the detector or the whole image)."""
    if not text or not text.strip():
        return None
    try:
        values = [float(value) for value in text.replace(",", " ").split()]
    except ValueError as error:
        raise ValueError(f"the box must be four numbers x1, y1, x2, y2 in pixels, got {text!r}") from error
    if len(values) != 4:
        raise ValueError(f"the box must be four numbers x1, y1, x2, y2 in pixels, got {text!r}")
    return [tuple(values)]


def hand_index(state, hand_label) -> int | None:
    if not state or not hand_label or state.get("pixel_values") is None:
        return None
    index = int(str(hand_label).split()[-1]) - 1
    return index if 0 <= index < len(state["sentences"]) else None


def summary(output: HandMeshOutput, drawing_ms: float) -> str:
    """ "N hands found", how, and the milliseconds of each stage."""
    count = len(output.hands)
    found = f"**{count} hand{'s' if count != 1 else ''} found**"
    if output.hands and output.hands[0]["whole_image"]:
        found += " (no detector and no box: the whole image is taken as one hand)"
    elif output.detector_ran:
        found += " by MediaPipe Hands"
    times = output.timings_ms
    stages = " · ".join(
        f"{name.replace('_', '-')} {times[name]:.0f} ms" for name in ("detection", "network", "post_process")
    )
    lines = [found, f"{stages} · drawing and files {drawing_ms:.0f} ms · total {times['total'] + drawing_ms:.0f} ms"]
    for index, hand in enumerate(output.hands):
        side = "left" if hand["is_left"] else "right"
        score = "" if hand["score"] is None else f", score {hand['score']:.2f}"
        box = ", ".join(f"{value:.0f}" for value in hand["box"])
        lines.append(f"- hand {index + 1}: {side}{score}, box ({box}) px")
    if output.hands and output.hands[0]["K_assumed"]:
        lines.append(
            "\n3D: camera intrinsics assumed (focal length 0.8 x the longer side), distance from a typical hand size."
        )
    return "\n".join(lines)


def sentences_markdown(hands, sentences) -> str:
    if not hands:
        return "No hand, no sentences."
    blocks = []
    for index, (hand, (x, y, z)) in enumerate(zip(hands, sentences, strict=True)):
        side = "left" if hand["is_left"] else "right"
        blocks.append(f"**Hand {index + 1} ({side})**\n\n- {x}\n- {y}\n- {z}")
    return "\n\n".join(blocks)


def build_demo(demo: HandMeshDemo) -> gr.Blocks:
    """The page: a Photo tab, a Text against image tab and a Webcam tab."""
    detector_ready = demo.detecting.detector is not None
    with gr.Blocks(title="CLIP-Hand3D", delete_cache=(600, 3600)) as blocks:
        gr.Markdown(header(demo, detector_ready))
        text_state = gr.State()
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(
                        label="Photo",
                        sources=["upload", "webcam", "clipboard"],
                        type="filepath",
                        image_mode=None,
                        webcam_options=gr.WebcamOptions(mirror=True),
                    )
                    use_detector = gr.Checkbox(
                        detector_ready, label="Find hands with MediaPipe", interactive=detector_ready
                    )
                    box = gr.Textbox(
                        label="Or give one hand's box: x1, y1, x2, y2 (pixels)", placeholder="e.g. 120, 80, 260, 240"
                    )
                    hand_choice = gr.Radio(list(HAND_CHOICES), value="as detected", label="Left or right hand")
                    mirrored = gr.Checkbox(False, label="Mirrored image (selfie or webcam snapshot)")
                    num_joints = gr.Slider(1, 21, value=5, step=1, label="Joints in the sentences")
                    run = gr.Button("Find hands", variant="primary")
                with gr.Column():
                    overlay = gr.Image(label="Meshes over the photo", type="pil", format="png", elem_id="overlay")
                    viewer = gr.Model3D(
                        label="3D (camera frame)", clear_color=(0.95, 0.95, 0.95, 1.0), elem_id="viewer"
                    )
                    found = gr.Markdown()
                    words = gr.Markdown(label="The pose in words")
                    files = gr.File(label="Downloads: .glb, .obj, .json", file_count="multiple")
            examples = sorted(str(path) for path in EXAMPLES_DIR.glob("*.png"))
            if examples:
                gr.Examples(examples, inputs=[image], label="Examples (synthetic hands rendered by the package)")
        with gr.Tab("Text against image"):
            hand, texts = text_tab(demo, text_state)
        with gr.Tab("Webcam stream"):
            webcam_tab(demo, detector_ready)
        photo_outputs = [overlay, viewer, files, found, words, text_state, hand, *texts]
        run.click(
            demo.photo,
            inputs=[image, use_detector, box, hand_choice, mirrored, num_joints],
            outputs=photo_outputs,
            api_name="find_hands",
            concurrency_limit=CONCURRENCY,
        )
    blocks.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return blocks


def header(demo: HandMeshDemo, detector_ready: bool) -> str:
    tower = demo.text_tower or "none in this checkpoint, so sentences cannot be scored"
    detector = "MediaPipe Hands (finds hands and their handedness)" if detector_ready else "none"
    if demo.detector_missing:
        detector += f" ({demo.detector_missing})"
    return (
        "# CLIP-Hand3D: every hand's 3D mesh from one photo\n"
        f"Model `{demo.model_path}` on {demo.runtime} · detector: {detector} · text tower: {tower}.\n\n"
        f"{REAL_PHOTOS_NOTE}"
    )


def text_tab(demo: HandMeshDemo, text_state: gr.State) -> tuple[gr.Dropdown, list[gr.Textbox]]:
    """The tab's widgets; returns the hand chooser and the three sentence boxes, which the photo handler fills."""
    if demo.text_tower is None:
        reason = "the model runs on an exported runtime" if demo.model is None else "this checkpoint has no text tower"
        gr.Markdown(f"Scoring sentences needs the PyTorch model with its text tower; here {reason}.")
    else:
        gr.Markdown(
            f"Edit the sentences, or write your own; each is scored against the found hand's pose features by the "
            f"model's pose-text matcher (cosine similarity per axis, -1 to 1). Text tower: {demo.text_tower}."
        )
    hand = gr.Dropdown([], label="Hand", interactive=True)
    texts = [gr.Textbox(label=f"From {axis}", lines=2) for axis in AXIS_NAMES]
    hand.change(demo.sentences_of, inputs=[text_state, hand], outputs=texts)
    if demo.text_tower is not None:
        score = gr.Button("Score the sentences", variant="primary")
        table = gr.Dataframe(headers=["axis", "your sentence", "predicted sentence"], label="Scores")
        score.click(demo.score, inputs=[text_state, hand, *texts], outputs=table, api_name="score_sentences")
    return hand, texts


def webcam_tab(demo: HandMeshDemo, detector_ready: bool) -> None:
    if not detector_ready:
        gr.Markdown('The stream needs the hand detector: `pip install "clip-hand3d[detect]"`.')
        return
    gr.Markdown("Hands are tracked across frames and smoothed (One Euro filter). The webcam shows a mirror image.")
    with gr.Row():
        camera = gr.Image(
            sources=["webcam"], streaming=True, type="numpy", webcam_options=gr.WebcamOptions(mirror=True)
        )
        overlay = gr.Image(label="Meshes", type="pil")
    rate = gr.Markdown()
    state = gr.State()
    camera.stream(
        demo.stream,
        inputs=[camera, state],
        outputs=[overlay, rate, state],
        stream_every=STREAM_EVERY,
        concurrency_limit=CONCURRENCY,
        api_name="stream",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The CLIP-Hand3D demo.")
    parser.add_argument(
        "--model", default=os.environ.get(MODEL_ENV), help=f"model folder or Hub repo id (or ${MODEL_ENV})"
    )
    parser.add_argument("--runtime", default="torch", help="torch, or onnxruntime / openvino for an exported folder")
    parser.add_argument("--no-detector", action="store_true", help="do not load MediaPipe Hands")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.model:
        sys.exit(
            f"No model given: pass --model DIR_OR_REPO or set {MODEL_ENV}. This demo does not run random weights; "
            f"train the README's tiny model first (about 20 minutes on a CPU):\n  {MAIN_JOB}\n"
            f"then: python spaces_demo/app.py --model outputs/clip-hand3d-tiny"
        )
    demo = HandMeshDemo(args.model, runtime=args.runtime, detector=None if args.no_detector else "mediapipe")
    build_demo(demo).launch(server_name=args.host, server_port=args.port, show_error=True, max_file_size="50mb")


if __name__ == "__main__":
    main()
