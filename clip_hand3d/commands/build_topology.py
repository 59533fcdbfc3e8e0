"""`clip-hand3d build-topology`: the coarse-to-fine mesh topology of MANO, built from the user's own MANO_RIGHT.pkl.

    clip-hand3d build-topology --mano MANO_RIGHT.pkl --out mano_topology.safetensors

Prints the level sizes, the face count and the template's reconstruction error per level (mm). The output is
derived from MANO: it stays on the user's machine (`clip_hand3d.topology_io` reads and writes it).
"""

import argparse
from pathlib import Path

from clip_hand3d.topology_io import save_topology, topology_from_mano


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `build-topology` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser(
        "build-topology",
        help="build a mesh topology file from MANO_RIGHT.pkl",
        description="Build the coarse-to-fine mesh topology of MANO from your own copy of MANO_RIGHT.pkl. The output "
        "is derived from MANO: keep it local, never redistribute it.",
    )
    parser.add_argument("--mano", type=Path, required=True, help="path to MANO_RIGHT.pkl")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """`clip-hand3d build-topology`: build, save, and print the level sizes, face count and reconstruction errors."""
    topology = topology_from_mano(args.mano)
    save_topology(topology, args.out)
    errors = ", ".join(f"{error:.2f}" for error in topology.reconstruction_error_mm())
    print(f"level sizes: {', '.join(str(size) for size in topology.level_sizes)}")
    print(f"faces: {topology.faces.shape[0]}")
    print(f"template reconstruction error per level (mm): {errors}")
    print(f"wrote {args.out} (derived from MANO: do not redistribute)")
    return 0
