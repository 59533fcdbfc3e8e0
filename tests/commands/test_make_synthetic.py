"""`clip-hand3d make-synthetic`: the FreiHAND layout on disk, the same labels as `render_sample`, clear refusals."""

import argparse
import json

import numpy as np
import pytest

from clip_hand3d.commands import make_synthetic
from clip_hand3d.data.synthetic import render_sample, write_synthetic_freihand


def test_make_synthetic_command_writes_the_layout(tmp_path):
    parser = argparse.ArgumentParser(prog="clip-hand3d")
    make_synthetic.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["make-synthetic", "--num", "2", "--out", str(tmp_path), "--image-size", "32", "--seed", "9"]
    )
    args.func(args)
    with open(tmp_path / "training_xyz.json", encoding="utf-8") as file:
        joints = json.load(file)
    np.testing.assert_array_equal(
        np.asarray(joints[1], dtype=np.float32), render_sample(1, seed=9, image_size=32)["joints_xyz"]
    )
    assert (tmp_path / "training" / "mask" / "00000001.jpg").is_file()
    with pytest.raises(SystemExit):
        parser.parse_args(["make-synthetic", "--num", "2", "--out", str(tmp_path), "--split", "validation"])
    with pytest.raises(FileExistsError, match="already holds a FreiHAND training split"):
        args.func(args)
    write_synthetic_freihand(tmp_path, num_samples=1, split="evaluation", image_size=32)  # the other split is free
    assert (tmp_path / "evaluation_K.json").is_file()
