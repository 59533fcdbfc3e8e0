"""`clip-hand3d make-synthetic`: render synthetic right hands and write them in FreiHAND's folder layout.

    clip-hand3d make-synthetic --num 10000 --out DIR [--split training|evaluation] [--image-size 224]

Read them back with `clip_hand3d.data.freihand.load_freihand(DIR, SPLIT, num_colour_versions=1)`. The rendering
and the layout are `clip_hand3d.data.synthetic.write_synthetic_freihand`'s.
"""

import argparse

from clip_hand3d.data.freihand import FREIHAND_SPLITS
from clip_hand3d.data.synthetic import write_synthetic_freihand


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `make-synthetic` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser(
        "make-synthetic",
        help="render synthetic hands in FreiHAND's folder layout",
        description=(
            "Render synthetic right hands of the built-in parametric hand and write them in FreiHAND's layout "
            "(DIR/training/rgb/00000000.jpg, DIR/training_xyz.json, ...). Read them back with "
            "clip_hand3d.data.freihand.load_freihand(DIR, SPLIT, num_colour_versions=1). "
            "DIR must not hold this split yet."
        ),
    )
    parser.add_argument("--num", type=int, required=True, metavar="N", help="number of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the synthetic set (default 0)")
    parser.add_argument("--image-size", type=int, default=224, metavar="S", help="image side in pixels (default 224)")
    parser.add_argument(
        "--split", choices=FREIHAND_SPLITS, default="training", help="FreiHAND split to write (default training)"
    )
    parser.add_argument("--num-proc", type=int, default=None, metavar="P", help="rendering processes (default 1)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    """`clip-hand3d make-synthetic`: `write_synthetic_freihand` with the parsed arguments; prints where."""
    out_dir = write_synthetic_freihand(args.out, args.num, args.seed, args.split, args.image_size, args.num_proc)
    print(f"wrote {args.num} synthetic {args.split} samples to {out_dir}")
