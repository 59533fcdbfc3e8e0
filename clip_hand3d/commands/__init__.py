"""The `clip-hand3d` command line: one module per subcommand, each with `register(subparsers)` and `run(args)`.

`clip-hand3d COMMAND --help` describes each of build-topology, make-synthetic, evaluate, benchmark, export, video,
push, push-space and mine-pairs.
"""

import argparse

from . import benchmark, build_topology, evaluate, export, make_synthetic, mine_pairs, push, video


def build_parser() -> argparse.ArgumentParser:
    """The `clip-hand3d` parser with every subcommand; each sets `args.func` to its `run`."""
    parser = argparse.ArgumentParser(
        prog="clip-hand3d", description="CLIP-Hand3D: 3D hand pose and mesh from one RGB image."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    build_topology.register(subparsers)
    make_synthetic.register(subparsers)
    evaluate.register(subparsers)
    benchmark.register(subparsers)
    export.register(subparsers)
    video.register(subparsers)
    push.register(subparsers)
    mine_pairs.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the `clip-hand3d` command given by `argv` (default: the process's arguments)."""
    args = build_parser().parse_args(argv)
    args.func(args)
