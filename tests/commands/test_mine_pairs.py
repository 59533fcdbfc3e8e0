"""`clip-hand3d mine-pairs`: the pairs and the summary on disk, a second run resumes, clear refusals."""

import json

import datasets
import numpy as np
import PIL.Image
import pytest

from clip_hand3d.commands import build_parser, main
from clip_hand3d.data.unlabeled import UnlabeledDataError
from clip_hand3d.training.mining import load_mined_pairs


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


def test_mine_pairs_on_synthetic_sequences_then_resume(tmp_path, capsys):
    out = tmp_path / "mined"
    argv = [
        "mine-pairs",
        "--dataset",
        "synthetic-video:6x4",
        "--keypoints",
        "column:joints_uv",
        "--out",
        str(out),
        "--k",
        "2",
        "--index",
        "hnsw",
        "--pca",
        "8",
        "--image-size",
        "32",
        "--shard-size",
        "10",
        "--no-progress",
    ]
    main(argv)
    printed = capsys.readouterr().out
    assert f"--pairs {out / 'pairs'}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_rows"] == 24 and summary["num_groups"] == 6 and summary["index"]["type"] == "hnsw"
    assert summary["shards"] == {"size": 10, "count": 3, "computed": 3, "skipped": 0}
    assert summary["feature_dim"] == 8 and summary["num_rows_with_fewer_than_k"] == 0
    pairs = load_mined_pairs(out / "pairs")
    sequence = np.asarray(pairs["index"]) // 4
    for row, own in zip(pairs, sequence, strict=True):
        assert len(row["neighbors"]) == 2 and all(neighbour // 4 != own for neighbour in row["neighbors"])
    main(argv)
    again = json.loads((out / "summary.json").read_text())
    assert again["shards"] == {"size": 10, "count": 3, "computed": 0, "skipped": 3}
    assert load_mined_pairs(out)["neighbors"] == pairs["neighbors"]


def test_mine_pairs_on_an_image_folder_with_a_model(tmp_path, tiny_dir):
    # Images in sub-folders (one group each); the keypoints of a (random-weight) clip-hand3d model on the crops.
    for video in ("a", "b", "c"):
        (tmp_path / "images" / video).mkdir(parents=True)
        for frame in range(2):
            pixels = np.random.default_rng([ord(video), frame]).integers(0, 256, (48, 64, 3), dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(tmp_path / "images" / video / f"{frame}.png")
    (tmp_path / "images" / "c" / "2.png").write_bytes(b"broken")
    argv = ["mine-pairs", "--dataset", str(tmp_path / "images"), "--keypoints", f"model:{tiny_dir}"]
    argv += ["--out", str(tmp_path / "out"), "--k", "3", "--pca", "0", "--no-progress"]
    with pytest.raises(UnlabeledDataError, match="c/2.png.*not an image"):
        main(argv)
    main([*argv, "--skip-unreadable"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_groups"] == 3 and summary["crop_size"] == 128 and summary["pca"] is None
    assert summary["num_unreadable"] == 1 and summary["unreadable_rows"] == [6] and summary["num_no_hand"] == 0
    pairs = load_mined_pairs(tmp_path / "out")
    groups = np.arange(6) // 2
    assert all(groups[n] != groups[row["index"]] for row in pairs for n in row["neighbors"])
    assert all(len(row["neighbors"]) == 3 for row in pairs)


def test_mine_pairs_refuses_bad_arguments(tmp_path):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["mine-pairs", "--dataset", "synthetic:4", "--keypoints", "mediapipe", "--out", "x", "--index", "lsh"]
        )
    with pytest.raises(UnlabeledDataError, match="expected synthetic-video:N"):
        main(
            ["mine-pairs", "--dataset", "synthetic-video:x", "--keypoints", "column:joints_uv", "--out", str(tmp_path)]
        )
    with pytest.raises(UnlabeledDataError, match="no requested column 'uv'"):
        main(["mine-pairs", "--dataset", "synthetic:4", "--keypoints", "column:uv", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="use mediapipe, model:DIR"):
        main(["mine-pairs", "--dataset", "synthetic:4", "--keypoints", "openpose", "--out", str(tmp_path)])
