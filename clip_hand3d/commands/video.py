"""`clip-hand3d video`: every hand of every frame of a video, smoothed over time, drawn over the frames.

    clip-hand3d video clip.mp4 --model outputs/clip-hand3d-tiny --out overlay.mp4 --json hands.jsonl

Each frame goes through `HandMeshPipeline` and then `clip_hand3d.smoothing.HandSmoother` (a One Euro filter per
hand track, on the frames' time stamps). `--out` gets the frames with each hand's mesh and skeleton drawn
(`clip_hand3d.visualization.draw_hands`), at the input's frame rate; `--json` gets one JSON line per frame:
`{"frame": index, "time": seconds, "hands": [...]}` with every field of every hand (`hands_to_json`) and its
`track_id`. Video files are read and written with PyAV (`pip install "clip-hand3d[video]"`), whose wheels
bundle ffmpeg.
"""

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import PIL.Image

# The encoder of each output container; every one is written as yuv420p, which needs even sizes.
ENCODERS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx"}
DEFAULT_RATE = Fraction(30)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `video` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser("video", help="Hands in every frame of a video: overlay video and JSON lines.")
    parser.add_argument("input", help="The video file (anything ffmpeg reads: .mp4, .mov, .webm, ...).")
    parser.add_argument("--model", required=True, help="Model folder or Hub repo id.")
    parser.add_argument("--detector", choices=("mediapipe", "none"), default="mediapipe")
    parser.add_argument("--mirrored", action="store_true", help="The frames are mirror images (a selfie video).")
    parser.add_argument("--out", default=None, help=f"The overlay video ({', '.join(ENCODERS)}).")
    parser.add_argument("--json", default=None, help="The hands as JSON lines, one line per frame.")
    parser.add_argument("--min-cutoff", type=float, default=1.0, help="One Euro cutoff of a still hand, Hz.")
    parser.add_argument(
        "--beta", type=float, default=0.01, help="One Euro cutoff rise, Hz per pixel/s (2D) and per mm/s (3D)."
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> dict:
    """`clip-hand3d video`: check the arguments, then read, estimate, smooth, draw and write every frame."""
    from clip_hand3d.smoothing import HandSmoother

    try:
        if args.out is None and args.json is None:
            raise ValueError("give --out (the overlay video), --json (the hands) or both")
        if args.out is not None:
            encoder_of(args.out)
        smoother = HandSmoother(min_cutoff=args.min_cutoff, beta=args.beta)
        container = open_video(args.input)
    except ValueError as error:
        raise SystemExit(f"clip-hand3d video: error: {error}") from None
    with container:
        pipe = _load_pipeline(args)
        try:
            summary = process_video(container, pipe, smoother, args)
        except ValueError as error:
            raise SystemExit(f"clip-hand3d video: error: {error}") from None
    print(
        f"{summary['frames']} frames, {summary['hands']} hands in {summary['seconds']:.1f} s "
        f"({summary['frames_per_second']:.1f} frames/s)"
    )
    return summary


def _load_pipeline(args: argparse.Namespace):
    from clip_hand3d.pipeline import HandMeshPipeline

    detector = None if args.detector == "none" else args.detector
    try:
        return HandMeshPipeline.from_pretrained(args.model, detector=detector)
    except OSError as error:
        raise SystemExit(f"clip-hand3d video: error: cannot load the model {args.model} ({error})") from None


def process_video(container, pipe, smoother, args: argparse.Namespace) -> dict:
    """Every frame of `container` through `pipe` and `smoother`, written to `args.out` / `args.json`; returns the
    counts of frames and hands, the seconds taken and the frames per second."""
    from clip_hand3d.pipeline import hands_to_json
    from clip_hand3d.visualization import draw_hands

    frames = hands = 0
    start = time.perf_counter()
    with ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(args.out, frame_rate(container))) if args.out else None
        lines = stack.enter_context(open(args.json, "w", encoding="utf-8")) if args.json else None
        for index, (time_s, image) in enumerate(read_frames(container)):
            found = smoother(pipe(image, mirrored=args.mirrored), time_s)
            if writer is not None:
                writer.write(draw_hands(image, found))
            if lines is not None:
                lines.write(json.dumps({"frame": index, "time": time_s, "hands": hands_to_json(found)}) + "\n")
            frames, hands = frames + 1, hands + len(found)
    if frames == 0:
        raise ValueError(f"{container.name} holds no frames")
    seconds = time.perf_counter() - start
    return {"frames": frames, "hands": hands, "seconds": seconds, "frames_per_second": frames / max(seconds, 1e-9)}


def _import_av():
    try:
        import av
    except ImportError:
        raise ValueError('reading and writing videos needs PyAV: pip install "clip-hand3d[video]"') from None
    return av


def open_video(path: str | Path):
    """The PyAV container of the video file `path`, checked to hold a video stream."""
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"video file {path} does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise ValueError(f"{path} is not a video file ffmpeg can read ({error})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} holds no video stream")
    return container


def frame_rate(container) -> Fraction:
    """The average frame rate of the container's first video stream, frames per second (30 when unknown)."""
    return Fraction(container.streams.video[0].average_rate or DEFAULT_RATE)


def read_frames(container) -> Iterator[tuple[float, PIL.Image.Image]]:
    """(time in seconds, RGB image) of every frame of the first video stream; a frame whose time stamp is missing
    or not after the previous one's is placed one frame period after it."""
    av = _import_av()
    period = 1 / float(frame_rate(container))
    previous = None
    try:
        for frame in container.decode(video=0):
            time_s = frame.time
            if time_s is None or (previous is not None and time_s <= previous):
                time_s = 0.0 if previous is None else previous + period
            previous = float(time_s)
            yield previous, frame.to_image()
    except av.error.FFmpegError as error:
        raise ValueError(f"{container.name}: the video cannot be decoded ({error})") from None


def encoder_of(path: str | Path) -> str:
    """The encoder of the video file `path`, by its suffix (`ENCODERS`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in ENCODERS:
        raise ValueError(f"--out {path}: the video must end in one of {', '.join(ENCODERS)}")
    return ENCODERS[suffix]


class VideoWriter:
    """Writes RGB PIL images as a video at `rate` frames per second; the size is the first image's, rounded down
    to even numbers (later images are scaled to it)."""

    def __init__(self, path: str | Path, rate: Fraction):
        self.av = _import_av()
        self.path, self.rate = Path(path), Fraction(rate)
        self.encoder = encoder_of(path)
        self.container = self.stream = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        self.container = self.av.open(str(self.path), mode="w")
        return self

    def write(self, image: PIL.Image.Image) -> None:
        """Append one frame."""
        if self.stream is None:
            self.stream = self.container.add_stream(self.encoder, rate=self.rate)
            self.stream.width, self.stream.height = max(2, image.width // 2 * 2), max(2, image.height // 2 * 2)
            self.stream.pix_fmt = "yuv420p"
        frame = self.av.VideoFrame.from_image(image.convert("RGB"))
        frame = frame.reformat(width=self.stream.width, height=self.stream.height, format="yuv420p")
        frame.pts = self.frames
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def __exit__(self, *exc_info) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()
