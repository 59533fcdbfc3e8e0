"""`clip-hand3d video` on short videos of synthetic hands, with a tiny random-weight model."""

import json
from fractions import Fraction

import numpy as np
import PIL.Image
import pytest

from clip_hand3d.commands import main
from clip_hand3d.commands.video import VideoWriter, open_video, read_frames
from clip_hand3d.data.synthetic.render import render_sample
from clip_hand3d.pipeline import HandMeshPipeline, hands_to_json
from clip_hand3d.smoothing import HandSmoother

pytest.importorskip("av")

NUM_FRAMES = 6
RATE = 10


def write_video(path, mirror: bool = False):
    """NUM_FRAMES synthetic right hands (mirror images of them with `mirror`) at RATE frames/s."""
    with VideoWriter(path, Fraction(RATE)) as writer:
        for index in range(NUM_FRAMES):
            image = render_sample(index, 0, 224, "train")["image"].convert("RGB")
            writer.write(image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT) if mirror else image)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "hands.mp4")


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_frame_is_drawn_and_written_as_a_json_line(tmp_path, tiny_dir, video):
    out, lines = tmp_path / "overlay.mp4", tmp_path / "hands.jsonl"
    main(
        ["video", str(video), "--model", str(tiny_dir), "--detector", "none", "--out", str(out), "--json", str(lines)]
    )
    with open_video(out) as container:
        frames = list(read_frames(container))
    assert len(frames) == NUM_FRAMES and all(image.size == (224, 224) for _, image in frames)
    records = read_lines(lines)
    assert [record["frame"] for record in records] == list(range(NUM_FRAMES))
    np.testing.assert_allclose([record["time"] for record in records], np.arange(NUM_FRAMES) / RATE, atol=1e-6)
    for record in records:
        (hand,) = record["hands"]
        assert hand["whole_image"] and hand["track_id"] == 0 and hand["is_left"] is False
        assert np.shape(hand["keypoints_2d"]) == (21, 2) and np.shape(hand["vertices_3d"]) == (778, 3)
        assert np.shape(hand["faces"])[1] == 3 and set(hand["timings_ms"]) >= {"network", "total"}


def test_the_json_holds_the_smoothed_hands(tmp_path, tiny_dir, video):
    lines = tmp_path / "hands.jsonl"
    main(["video", str(video), "--model", str(tiny_dir), "--detector", "none", "--json", str(lines), "--beta", "0"])
    pipe, smoother = HandMeshPipeline.from_pretrained(tiny_dir, detector=None), HandSmoother(beta=0.0)
    with open_video(video) as container:
        expected = [hands_to_json(smoother(pipe(image), time_s)) for time_s, image in read_frames(container)]
    for record, hands in zip(read_lines(lines), expected, strict=True):
        for name in ("box", "keypoints_2d", "joints_3d", "vertices_cam"):
            np.testing.assert_allclose(record["hands"][0][name], hands[0][name], rtol=1e-5, atol=1e-5)
    # Smoothing changed the later frames: the raw network output of frame 1 is not what was written.
    with open_video(video) as container:
        raw = [pipe(image) for _, image in read_frames(container)]
    assert not np.allclose(read_lines(lines)[1]["hands"][0]["keypoints_2d"], raw[1][0]["keypoints_2d"])


def test_the_mediapipe_detector_on_a_mirrored_video(tmp_path, tiny_dir):
    pytest.importorskip("mediapipe")
    from clip_hand3d.detection import MediaPipeHandDetector

    selfie = write_video(tmp_path / "selfie.mp4", mirror=True)
    lines = tmp_path / "hands.jsonl"
    main(["video", str(selfie), "--model", str(tiny_dir), "--mirrored", "--json", str(lines)])
    records = read_lines(lines)
    assert len(records) == NUM_FRAMES
    assert all(hand["box_source"] == "detector" and hand["mirrored"] for record in records for hand in record["hands"])
    # Each frame's hands are MediaPipe's on that frame, read as a selfie (a mirrored right hand is the person's
    # right hand; MediaPipe itself misreads the odd synthetic hand).
    with open_video(selfie) as container, MediaPipeHandDetector(mirrored=True) as detector:
        expected = [[d.is_left for d in detector.detect(np.asarray(image))] for _, image in read_frames(container)]
    assert sum(map(len, expected)) >= 2
    assert [sorted(hand["is_left"] for hand in record["hands"]) for record in records] == [sorted(e) for e in expected]


@pytest.mark.parametrize(
    "make_input, extra, message",
    [
        (lambda tmp: tmp / "missing.mp4", ["--json", "x.jsonl"], "does not exist"),
        (lambda tmp: (tmp / "notes.mp4").write_text("not a video") and tmp / "notes.mp4", ["--json", "x.jsonl"],
         "is not a video file ffmpeg can read"),
        (lambda tmp: tmp / "missing.mp4", [], "give --out"),
        (lambda tmp: tmp / "missing.mp4", ["--out", "x.avi"], "must end in one of .mp4"),
    ],
)  # fmt: skip
def test_bad_inputs_get_a_clear_error_before_the_model_loads(tmp_path, make_input, extra, message):
    with pytest.raises(SystemExit, match=message):
        main(["video", str(make_input(tmp_path)), "--model", str(tmp_path / "no-model"), *extra])


def test_odd_sized_frames_are_written_at_the_even_size_below(tmp_path):
    path = tmp_path / "odd.webm"
    with VideoWriter(path, Fraction(25)) as writer:
        for shade in (0, 128, 255):
            writer.write(PIL.Image.new("RGB", (225, 161), (shade, 0, 0)))
    with open_video(path) as container:
        frames = list(read_frames(container))
    assert [image.size for _, image in frames] == [(224, 160)] * 3
    assert [round(time_s, 3) for time_s, _ in frames] == [0.0, 0.04, 0.08]
    assert abs(int(np.asarray(frames[2][1])[80, 112, 0]) - 255) < 20


def test_a_missing_model_gets_a_clear_error(tmp_path, video):
    with pytest.raises(SystemExit, match="cannot load the model"):
        main(["video", str(video), "--model", str(tmp_path / "no-model"), "--detector", "none", "--json", "x.jsonl"])
