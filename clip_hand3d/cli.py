"""The `clip-hand3d` command: build-topology, make-synthetic, evaluate, benchmark."""

import argparse

from clip_hand3d.commands import benchmark, build_topology, evaluate, make_synthetic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clip-hand3d", description="CLIP-Hand3D: 3D hand pose and mesh from one RGB image."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    build_topology.register(subparsers)
    make_synthetic.register(subparsers)
    evaluate.register(subparsers)
    benchmark.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
