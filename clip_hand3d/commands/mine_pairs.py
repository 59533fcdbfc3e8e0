"""`clip-hand3d mine-pairs`: HandCLR's positive pairs of an unlabeled hand pool.

    clip-hand3d mine-pairs --dataset SPEC --keypoints mediapipe|model:DIR|column:NAME --out DIR [--k 5]
        [--index exact|ivf|hnsw|auto] [--pca 14]

Every row's crop (box x1.3, left hands mirrored), its 2D keypoints normalised to the crop ([0, 1]), and its k nearest
rows of other groups in a faiss index; written to DIR/pairs (a `datasets.Dataset` of {index, neighbors, distances,
keypoints_2d}) with DIR/summary.json. Keypoints are computed in shards under DIR/keypoints: the same command run
again goes on where it stopped. SPECs and columns are `clip_hand3d.data.unlabeled`'s; the mining is
`clip_hand3d.training.mining`'s.
"""

import argparse
import json

from clip_hand3d.data.unlabeled import IMAGE_COLUMN, load_unlabeled
from clip_hand3d.training.keypoint_estimators import make_keypoint_estimator
from clip_hand3d.training.keypoint_shards import DEFAULT_SHARD_SIZE
from clip_hand3d.training.mining import DEFAULT_K, DEFAULT_PCA_DIM, INDEX_TYPES, mine_pairs


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `mine-pairs` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser(
        "mine-pairs",
        help="mine HandCLR's positive pairs (similar 2D poses of other images and groups)",
        description=(
            "Compute every unlabeled crop's 2D keypoints (in resumable shards) and write each row's k nearest rows "
            "of other groups (never its own video / sequence) as a datasets.Dataset in OUT/pairs, with "
            "OUT/summary.json. SPEC: folder:PATH or PATH (images; group = sub-folder), disk:PATH (save_to_disk), "
            "hub:NAME, stream:PATH_OR_NAME (streamed), synthetic:N, synthetic-video:N[xF]."
        ),
    )
    parser.add_argument("--dataset", required=True, metavar="SPEC", help="the unlabeled images (see above)")
    parser.add_argument(
        "--keypoints",
        required=True,
        metavar="SOURCE",
        help="mediapipe (MediaPipe Hands on each crop), model:DIR (a trained clip-hand3d model on each crop) or "
        "column:NAME ((21, 2) pixels of the image in column NAME, e.g. column:joints_uv of the synthetic hands)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (resumes what it holds)")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help=f"neighbours per row (default {DEFAULT_K})")
    parser.add_argument(
        "--index",
        choices=INDEX_TYPES,
        default="auto",
        help="faiss index: exact (IndexFlatL2), ivf, hnsw, or auto (exact up to 200,000 rows, ivf above)",
    )
    parser.add_argument(
        "--pca",
        type=int,
        default=DEFAULT_PCA_DIM,
        metavar="D",
        help=f"reduce the 42 keypoint coordinates to D by PCA (default {DEFAULT_PCA_DIM}; 0: no PCA)",
    )
    parser.add_argument("--split", default="train", help="split of a DatasetDict, Hub set or stream (default train)")
    parser.add_argument("--image-column", default=IMAGE_COLUMN, help="the image column (default image)")
    parser.add_argument("--box-column", default=None, help="the box column (default: box, when there is one)")
    parser.add_argument("--is-left-column", default=None, help="the handedness column (default: is_left, if any)")
    parser.add_argument("--group-column", default=None, help="the video / sequence column (default: group, if any)")
    parser.add_argument(
        "--crop-size", type=int, default=224, help="crop side for mediapipe / column sources (model: its own size)"
    )
    parser.add_argument(
        "--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help=f"rows per shard (default {DEFAULT_SHARD_SIZE})"
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="processes computing keypoints (default 1; more need a source other than stream:)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="crops per model call (model: source)")
    parser.add_argument("--device", default="cpu", help="device of a model: source (default cpu)")
    parser.add_argument("--image-size", type=int, default=224, help="image side of synthetic sources (default 224)")
    parser.add_argument("--seed", type=int, default=0, help="seed of synthetic sources, PCA and IVF (default 0)")
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="count and leave out rows whose image file is missing or broken (default: stop, naming it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> dict:
    """`clip-hand3d mine-pairs`: read the source, mine, print the summary."""
    keypoint_column = args.keypoints.partition(":")[2] if args.keypoints.startswith("column:") else None
    source = load_unlabeled(
        args.dataset,
        split=args.split,
        image_column=args.image_column,
        box_column=args.box_column,
        is_left_column=args.is_left_column,
        group_column=args.group_column,
        columns=[keypoint_column] if keypoint_column else [],
        image_size=args.image_size,
        seed=args.seed,
    )
    estimator = make_keypoint_estimator(args.keypoints, args.crop_size, args.batch_size, args.device)
    try:
        summary = mine_pairs(
            source,
            estimator,
            args.out,
            k=args.k,
            index=args.index,
            pca=args.pca or None,
            shard_size=args.shard_size,
            seed=args.seed,
            progress=not args.no_progress,
            num_workers=args.num_workers,
            skip_unreadable=args.skip_unreadable,
        )
    finally:
        estimator.close()
    listed = ("no_hand_rows", "unreadable_rows", "rows_with_fewer_than_k")
    print(json.dumps({key: value for key, value in summary.items() if key not in listed}, indent=2))
    print(f"pairs: {summary['pairs']} (pre-training reads it with --pairs {summary['pairs']})")
    return summary
