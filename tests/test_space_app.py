"""The Space (`spaces_demo/app.py`) served on 127.0.0.1 with a tiny saved model and called with gradio_client:
every output, many clients at once, memory over many requests, bad uploads, and the page in a real browser."""

import concurrent.futures
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import psutil
import pytest
import trimesh
from gradio_client import Client, handle_file

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces_demo"
# Clients wait this long for an answer: 20 at once queue behind a concurrency of 2 on a small CPU.
CLIENT_TIMEOUT_S = 300
EXAMPLES = {path.stem: path for path in (SPACE_DIR / "examples").glob("*.png")}
# The growth of the serving process's memory allowed over 100 requests (steady state; see the note in the test).
MEMORY_GROWTH_LIMIT_MB = 150


def load_app():
    spec = importlib.util.spec_from_file_location("spaces_demo_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = load_app()


@pytest.fixture(scope="module")
def demo(tiny_dir):
    return app.HandMeshDemo(str(tiny_dir))


@pytest.fixture(scope="module")
def server(demo, tmp_path_factory):
    # The server's file cache and the clients' downloads in this run's own folder, not the shared /tmp/gradio.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        blocks = app.build_demo(demo)
        _, url, _ = blocks.launch(
            server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, show_error=True
        )
        yield url
        blocks.close()


def new_client(url: str) -> Client:
    downloads = os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())
    return Client(url, verbose=False, httpx_kwargs={"timeout": CLIENT_TIMEOUT_S}, download_files=downloads)


@pytest.fixture(scope="module")
def client(server):
    return new_client(server)


def find_hands(client, path, detector=True, box="", hand="as detected", mirrored=False, num_joints=5):
    return client.predict(handle_file(str(path)), detector, box, hand, mirrored, num_joints, api_name="/find_hands")


def test_examples_ship_with_the_space():
    assert set(EXAMPLES) == {"right_hand", "two_hands"}
    for path in EXAMPLES.values():
        assert path.stat().st_size < 200_000 and PIL.Image.open(path).mode == "RGB"


def test_every_output_of_a_photo_with_two_hands(client):
    # (gr.State outputs stay on the server: the client gets the other nine.)
    overlay, viewer, files, found, words, hand, text_x, text_y, text_z = find_hands(client, EXAMPLES["two_hands"])
    assert PIL.Image.open(overlay).size == (448, 224)
    assert "**2 hands found** by MediaPipe Hands" in found and "hand 1: right" in found and "hand 2: left" in found
    scene = trimesh.load(viewer)
    assert sorted(scene.geometry) == ["hand_0_right", "hand_1_left"]
    assert all(mesh.vertices.shape == (778, 3) for mesh in scene.geometry.values())
    names = sorted(Path(file).name for file in files)
    assert names == ["hands.glb", "hands.json", "hands.obj"]
    results = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert results["image_size"] == [224, 448] and len(results["hands"]) == 2
    fields = {"box", "is_left", "score", "keypoints_2d", "joints_3d", "vertices_3d", "joints_cam", "vertices_cam", "K"}
    assert fields <= set(results["hands"][0])
    assert np.asarray(results["hands"][1]["vertices_3d"]).shape == (778, 3)
    assert "**Hand 1 (right)**" in words and words.count("From left to right,") == 2
    assert text_x.startswith("From left to right,") and text_y.startswith("From top to bottom,")
    assert text_z.startswith("From near to far,") and hand["value"] == "hand 1"


def test_detector_off_box_and_handedness_override(client):
    found = find_hands(client, EXAMPLES["right_hand"], detector=False)[3]
    assert "**1 hand found** (no detector and no box: the whole image is taken as one hand)" in found
    assert "hand 1: right" in found
    result = find_hands(client, EXAMPLES["right_hand"], box="60, 40, 160, 110", hand="left")
    assert "hand 1: left, box (60, 40, 160, 110) px" in result[3] and "MediaPipe" not in result[3]
    with pytest.raises(Exception, match="the box must be four numbers"):
        find_hands(client, EXAMPLES["right_hand"], box="60, 40")


def test_sentences_are_scored_against_the_hand(client):
    # The found hand's crop stays in the session's state on the server; the same client scores against it.
    *_, text_x, _text_y, text_z = find_hands(client, EXAMPLES["right_hand"])
    table = client.predict(
        "hand 1", text_x, "From top to bottom, the joints are wrist.", text_z, api_name="/score_sentences"
    )
    rows = table["data"]
    assert [row[0] for row in rows] == list(app.AXIS_NAMES)
    assert all(-1 <= value <= 1 for row in rows for value in row[1:])
    # The unchanged x and z sentences are the predicted ones: the same scores; y differs.
    assert rows[0][1] == rows[0][2] and rows[2][1] == rows[2][2] and rows[1][1] != rows[1][2]
    with pytest.raises(Exception, match="hand 1 is not in the list of choices"):
        new_client(client.src).predict("hand 1", "a", "b", "c", api_name="/score_sentences")


def test_twenty_clients_at_once_all_get_their_answers(server):
    def call(index):
        path = EXAMPLES["two_hands" if index % 2 else "right_hand"]
        return index, find_hands(new_client(server), path)[3]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = dict(pool.map(call, range(20)))
    for index, found in answers.items():
        assert f"**{2 if index % 2 else 1} hand" in found


def test_memory_stays_bounded_over_a_hundred_requests(client):
    process = psutil.Process()
    for _ in range(10):  # warm up: allocator pools, gradio's caches
        find_hands(client, EXAMPLES["right_hand"], detector=False)
    before = process.memory_info().rss
    for _ in range(100):
        find_hands(client, EXAMPLES["right_hand"], detector=False)
    growth_mb = (process.memory_info().rss - before) / 2**20
    assert growth_mb < MEMORY_GROWTH_LIMIT_MB, f"the server grew {growth_mb:.0f} MB over 100 requests"


def bad_upload(tmp_path, kind: str) -> Path:
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("not an image")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        buffer = io.BytesIO()
        PIL.Image.open(EXAMPLES["right_hand"]).save(buffer, format="JPEG")
        path = tmp_path / "truncated.jpg"
        path.write_bytes(buffer.getvalue()[:2000])
    elif kind == "tiny":
        PIL.Image.new("RGB", (1, 1)).save(path)
    elif kind == "huge":
        PIL.Image.new("L", (12000, 10000)).save(path, optimize=True)  # 120 MP, under 1 MB as a PNG
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "cannot identify image file"),
        ("empty", "cannot identify image file"),
        ("truncated", "truncated"),
        ("tiny", r"too small \(1x1"),
        ("huge", "too large"),
    ],
)
def test_bad_uploads_get_a_clear_error_and_the_server_goes_on(client, tmp_path, kind, message):
    with pytest.raises(Exception, match=message):
        find_hands(client, bad_upload(tmp_path, kind))
    assert "**1 hand found**" in find_hands(client, EXAMPLES["right_hand"])[3]


def test_the_webcam_stream_tracks_and_smooths_the_hands(demo):
    frame = np.asarray(PIL.Image.open(EXAMPLES["two_hands"]))  # (taken as a mirrored webcam frame)
    overlay, rate, state = demo.stream(frame, None)
    assert overlay.size == (448, 224) and rate.startswith("2 hands · 0.0 frames/s")
    for _ in range(3):
        overlay, rate, state = demo.stream(frame, state)
    assert rate.startswith("2 hands · ") and float(rate.split(" · ")[1].split()[0]) > 0
    # The same two hands all along: two tracks, not eight.
    assert sorted(track.track_id for track in state["smoother"].tracks) == [0, 1]
    assert demo.stream(None, state)[0] is None


def test_without_a_model_it_says_how_to_make_one(monkeypatch, capsys):
    monkeypatch.delenv(app.MODEL_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        app.main([])
    assert "train.py --recipe recipes/synthetic_tiny_15min.json" in str(exit_info.value)
    assert "does not run random weights" in str(exit_info.value)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_in_a_real_browser(server, tmp_path):
    """Headless Chromium loads the page, takes an example, presses the button and waits for the overlay and the 3D
    viewer; the screenshot is written to $DEMO_SCREENSHOT (or the test's folder)."""
    screenshot = Path(os.environ.get("DEMO_SCREENSHOT", tmp_path / "demo.png"))
    script = Path(__file__).with_name("browser_demo.py")
    result = subprocess.run(
        [sys.executable, str(script), server, str(screenshot), CHROMIUM],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    image = PIL.Image.open(screenshot)
    assert image.size[0] >= 1000 and np.asarray(image).std() > 10


def test_the_header_says_what_a_synthetic_only_model_can_do_on_real_photos():
    demo = SimpleNamespace(text_tower=None, detector_missing=None, model_path="outputs/tiny", runtime="torch")
    text = app.header(demo, detector_ready=True)
    assert "`outputs/tiny` on torch" in text and app.REAL_PHOTOS_NOTE in text
    assert "not accurate on real photos" in app.REAL_PHOTOS_NOTE and "FreiHAND" in app.REAL_PHOTOS_NOTE
