"""`clip-hand3d build-topology`: a topology built from a MANO-format pickle, saved, and its summary printed."""

import argparse
import re

from clip_hand3d.commands import build_topology
from clip_hand3d.topology_io import load_topology, write_mano_format_pickle
from tests.test_topology_io import builtin_as_mano_arrays


def test_build_topology_command(tmp_path, capsys):
    arrays = builtin_as_mano_arrays()
    mano_path, out_path = tmp_path / "MANO_RIGHT.pkl", tmp_path / "mano_topology.safetensors"
    write_mano_format_pickle(
        mano_path, arrays["vertices"], arrays["faces"], arrays["J_regressor_16"], arrays["weights"]
    )
    parser = argparse.ArgumentParser(prog="clip-hand3d")
    build_topology.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["build-topology", "--mano", str(mano_path), "--out", str(out_path)])
    assert args.func(args) == 0
    assert load_topology(out_path).level_sizes == (21, 98, 389, 778)
    printed = capsys.readouterr().out
    assert "level sizes: 21, 98, 389, 778" in printed and "faces: 1552" in printed
    assert re.search(r"per level \(mm\): \d+\.\d\d, \d+\.\d\d, \d+\.\d\d, 0\.00\n", printed)
    assert "do not redistribute" in printed
