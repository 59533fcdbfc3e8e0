"""The unlabeled reader (image folders, in-memory, saved and streamed datasets, synthetic hands and sequences),
its crops (the processor's, box x1.3, left hands mirrored) and its errors; the synthetic sequences themselves."""

import datasets
import numpy as np
import PIL.Image
import pytest
from datasets import Dataset, DatasetDict, Features, Image, List, Value

from clip_hand3d.data.synthetic.sequences import (
    SEQUENCE_FEATURES,
    SequenceScene,
    iter_synthetic_sequences,
    load_synthetic_sequences,
    render_sequence_frame,
)
from clip_hand3d.data.unlabeled import (
    UnlabeledDataError,
    UnlabeledHands,
    crop_processor,
    crop_row,
    load_unlabeled,
    normalize_keypoints,
)
from clip_hand3d.geometry import square_box_affine
from clip_hand3d.image_utils import crop_image

BOX_FEATURES = Features(
    {"image": Image(), "box": List(Value("float32"), length=4), "is_left": Value("bool"), "group": Value("int64")}
)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep the path tables and generator locks out of ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


def gradient_image(seed: int, height: int = 40, width: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture()
def image_folder(tmp_path):
    root = tmp_path / "videos"
    for video in ("clip_a", "clip_b"):
        (root / video).mkdir(parents=True)
        for frame in range(2):
            PIL.Image.fromarray(gradient_image(frame)).save(root / video / f"{frame:03d}.png")
    PIL.Image.fromarray(gradient_image(9, 30, 30)).save(root / "single.jpg")
    return root


@pytest.fixture()
def boxed_dataset():
    images = [gradient_image(index) for index in range(4)]
    return Dataset.from_dict(
        {
            "image": images,
            "box": [[5, 4, 35, 30], None, [10, 10, 20, 30], [0, 0, 59, 39]],
            "is_left": [False, False, True, True],
            "group": [7, 7, 8, None],
        },
        features=BOX_FEATURES,
    )


def test_image_folder_rows_groups_and_crops(image_folder):
    source = load_unlabeled(str(image_folder))
    rows = list(source)
    assert source.num_rows == 5 and not source.streaming
    # A folder's own images first, then its sub-folders (sorted); the group is the sub-folder.
    assert [row.group for row in rows] == [None, "clip_a", "clip_a", "clip_b", "clip_b"]
    assert all(row.box is None and not row.is_left for row in rows)
    processor = crop_processor(32)
    crop, affine = crop_row(rows[1], processor)
    # No box: the square around the whole image (the processor's box-less crop).
    np.testing.assert_allclose(affine, processor.crop_transform(None, 40, 60, False))
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    # The same rows streamed, and from a later start.
    stream = load_unlabeled(f"stream:{image_folder}")
    assert stream.streaming and stream.num_rows is None
    assert [row.group for row in stream.iter_rows(3)] == ["clip_b", "clip_b"]
    np.testing.assert_array_equal(crop_row(next(stream.iter_rows(1)), processor)[0], crop)
    assert load_unlabeled(f"folder:{image_folder}").row(0).group is None


def test_in_memory_dataset_boxes_margin_and_left_hands(boxed_dataset):
    source = load_unlabeled(boxed_dataset)
    rows = [source.row(index) for index in range(4)]
    assert [row.group for row in rows] == ["7", "7", "8", None]
    assert rows[1].box is None and rows[2].is_left
    processor = crop_processor(48)
    for row in (rows[0], rows[2]):
        crop, affine = crop_row(row, processor)
        # The box enlarged x1.3 around its centre, mirrored for a left hand: the processor's crop path.
        np.testing.assert_allclose(affine, square_box_affine(row.box, 48, 1.3, mirror=row.is_left))
        image = PIL.Image.fromarray(gradient_image(row.index))
        np.testing.assert_array_equal(crop, np.asarray(crop_image(image, affine, 48)))
    # A left hand's crop is its right-hand crop flipped (up to the half-pixel of the crop grid).
    left, _ = crop_row(rows[2], processor)
    rows[2].is_left = False
    right, _ = crop_row(rows[2], processor)
    assert (
        np.abs(left[:, ::-1].astype(int)[:, 1:] - right.astype(int)[:, :-1]).mean()
        < np.abs(left.astype(int) - right.astype(int)).mean()
    )
    # A side of 1.3 x 30 px mapped onto 48 px.
    np.testing.assert_allclose(abs(crop_row(rows[0], processor)[1][0, 0]), 48 / (1.3 * 30))


def test_saved_and_streamed_datasets(boxed_dataset, tmp_path):
    boxed_dataset.save_to_disk(str(tmp_path / "saved"))
    saved = load_unlabeled(str(tmp_path / "saved"))
    assert saved.num_rows == 4 and [row.group for row in saved] == ["7", "7", "8", None]
    streamed_saved = load_unlabeled(f"stream:{tmp_path / 'saved'}")
    assert streamed_saved.streaming and [row.index for row in streamed_saved.iter_rows(2)] == [2, 3]
    # Parquet shards on disk, streamed (never loaded whole).
    (tmp_path / "parquet").mkdir()
    boxed_dataset.select(range(2)).to_parquet(str(tmp_path / "parquet" / "train-00000.parquet"))
    boxed_dataset.select(range(2, 4)).to_parquet(str(tmp_path / "parquet" / "train-00001.parquet"))
    stream = load_unlabeled(f"stream:{tmp_path / 'parquet'}")
    rows = list(stream)
    assert stream.streaming and len(rows) == 4
    assert [row.group for row in rows] == ["7", "7", "8", None] and rows[1].box is None
    processor = crop_processor(32)
    np.testing.assert_array_equal(crop_row(rows[2], processor)[0], crop_row(saved.row(2), processor)[0])
    # A DatasetDict: its split, or an error listing the splits.
    DatasetDict({"train": boxed_dataset}).save_to_disk(str(tmp_path / "dict"))
    assert load_unlabeled(f"disk:{tmp_path / 'dict'}").num_rows == 4
    with pytest.raises(UnlabeledDataError, match="no split 'validation'.*train"):
        load_unlabeled(f"disk:{tmp_path / 'dict'}", split="validation")


def test_clear_errors(boxed_dataset, image_folder, tmp_path):
    with pytest.raises(UnlabeledDataError, match="no image column 'picture'.*image, box, is_left, group"):
        load_unlabeled(boxed_dataset, image_column="picture")
    with pytest.raises(UnlabeledDataError, match="no group column 'video'"):
        load_unlabeled(boxed_dataset, group_column="video")
    with pytest.raises(UnlabeledDataError, match="no requested column 'keypoints'"):
        load_unlabeled(boxed_dataset, columns=["keypoints"])
    bad_boxes = Dataset.from_dict({"image": [gradient_image(0)] * 2, "box": [[0, 0, 9, 9], [1, 2, 3]]})
    with pytest.raises(UnlabeledDataError, match=r"row 1 of Dataset: column 'box' must be 4 .*\[1, 2, 3\]"):
        list(load_unlabeled(bad_boxes))
    flipped = Dataset.from_dict({"image": [gradient_image(0)], "box": [[9, 0, 1, 9]]})
    with pytest.raises(UnlabeledDataError, match="x1 > x0"):
        list(load_unlabeled(flipped))
    (image_folder / "clip_b" / "broken.png").write_bytes(b"not a png")
    rows = list(load_unlabeled(str(image_folder)))
    broken = next(row for row in rows if "broken.png" in row.name)
    with pytest.raises(UnlabeledDataError, match="broken.png.*not an image"):
        broken.load_image()
    missing = Dataset.from_dict({"image": [str(tmp_path / "gone.jpg")]})
    with pytest.raises(UnlabeledDataError, match="gone.jpg.*does not exist"):
        next(iter(load_unlabeled(missing))).load_image()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnlabeledDataError, match="holds no .jpg"):
        load_unlabeled(f"folder:{tmp_path / 'empty'}")
    for spec, message in (
        ("synthetic:many", "expected synthetic:N"),
        ("synthetic-video:4xq", "expected synthetic-video:N"),
        (str(tmp_path / "nowhere"), "is no folder"),
        (f"disk:{tmp_path / 'empty'}", "not a folder written by save_to_disk"),
    ):
        with pytest.raises(UnlabeledDataError, match=message):
            load_unlabeled(spec)
    with pytest.raises(UnlabeledDataError, match="must be a datasets.Dataset"):
        UnlabeledHands([1, 2, 3])


def test_normalised_keypoints_span_the_crop():
    np.testing.assert_allclose(normalize_keypoints([[-0.5, -0.5], [31.5, 15.5]], 32), [[0, 0], [1, 0.5]])


def test_synthetic_sources_render_on_access():
    images = load_unlabeled("synthetic:3", image_size=32, columns=["joints_uv"])
    assert images.num_rows == 3 and all(row.group is None for row in images)
    video = load_unlabeled("synthetic-video:2x3", image_size=32, columns=["joints_uv"])
    rows = list(video)
    assert [row.group for row in rows] == ["0", "0", "0", "1", "1", "1"]
    assert np.asarray(rows[4].columns["joints_uv"]).shape == (21, 2) and rows[4].box is not None
    np.testing.assert_array_equal(np.asarray(video.row(4).load_image()), np.asarray(rows[4].load_image()))


def test_sequence_frames_are_pure_and_move_slowly():
    # Any frame alone, in any order, equals the frame rendered in sequence.
    scene = SequenceScene(3, seed=1, image_size=32, p_left=0.5)
    in_order = [scene.render_frame(frame) for frame in range(4)]
    alone = render_sequence_frame(3, 2, seed=1, image_size=32, p_left=0.5)
    np.testing.assert_array_equal(np.asarray(alone["image"]), np.asarray(in_order[2]["image"]))
    np.testing.assert_array_equal(alone["joints_xyz"], in_order[2]["joints_xyz"])
    assert alone["group"] == 3 and alone["frame"] == 2
    assert {row["is_left"] for row in in_order} == {in_order[0]["is_left"]}  # one hand per sequence
    # Frames of one sequence are close; other sequences, seeds and splits differ.
    joints = np.stack([row["joints_xyz"] - row["joints_xyz"][0] for row in in_order])
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean()
    other = render_sequence_frame(4, 2, seed=1, image_size=32, p_left=0.5)["joints_xyz"]
    assert steps < 0.3 * np.linalg.norm((other - other[0]) - joints[2], axis=-1).mean()
    assert not np.array_equal(render_sequence_frame(3, 2, seed=2, image_size=32)["joints_xyz"], joints[2])
    assert not np.array_equal(render_sequence_frame(3, 2, seed=1, image_size=32, split="test")["K"], scene.K)


def test_sequence_datasets_match_the_frames(tmp_path):
    dataset = load_synthetic_sequences(2, frames_per_sequence=2, seed=4, image_size=32, cache_dir=tmp_path)
    assert dataset.features == SEQUENCE_FEATURES
    assert dataset["group"] == [0, 0, 1, 1] and dataset["frame"] == [0, 1, 0, 1]
    expected = render_sequence_frame(1, 1, seed=4, image_size=32)
    np.testing.assert_array_equal(np.asarray(dataset[3]["image"]), np.asarray(expected["image"]))
    streamed = list(iter_synthetic_sequences(2, frames_per_sequence=2, seed=4, image_size=32))
    np.testing.assert_array_equal(np.asarray(streamed[3]["joints_uv"]), np.asarray(dataset[3]["joints_uv"]))
    with pytest.raises(ValueError, match="frames_per_sequence"):
        load_synthetic_sequences(2, frames_per_sequence=0)
