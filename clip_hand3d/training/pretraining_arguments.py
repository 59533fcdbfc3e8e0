"""Command-line arguments of pretrain.py and their checks; recipes as train.py's (`arguments.parse_with_recipe`)."""

import argparse

from clip_hand3d.training.arguments import add_run_arguments, check_run_args, parse_with_recipe
from clip_hand3d.training.pretraining_objectives import DEFAULT_TEMPERATURE, NEGATIVE_WEIGHTINGS, OBJECTIVES
from clip_hand3d.variants import resolve_variant


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Pre-train CLIP-Hand3D's encoder on unlabeled hand crops (launch with `accelerate launch "
        "pretrain.py ...`); `train.py --init_from OUTPUT_DIR/encoder` fine-tunes from it."
    )
    parser.add_argument("--recipe", type=str, default=None, help="JSON file of argument defaults.")
    parser.add_argument(
        "--config", type=str, default="clip-hand3d-tiny", help="Variant (hub_configs/) whose backbone is trained."
    )
    parser.add_argument("--objective", choices=OBJECTIVES, default="handclr")
    parser.add_argument(
        "--dataset",
        type=str,
        default="synthetic:2000",
        help="Unlabeled pool (clip_hand3d.data.unlabeled SPECs): folder:PATH, disk:PATH, hub:NAME, synthetic:N, "
        "synthetic-video:N[xF] (the synthetic hands without their labels, rendered once into the datasets cache).",
    )
    parser.add_argument(
        "--data_seed", type=int, default=None, help="Seed of a synthetic pool (default: --seed); mine-pairs' --seed."
    )
    parser.add_argument(
        "--image_size", type=int, default=None, help="Crop side in pixels (default: the variant's; HandCLR: 128)."
    )
    parser.add_argument(
        "--pairs",
        type=str,
        default=None,
        help="HandCLR: the folder `clip-hand3d mine-pairs` wrote (index, neighbors, distances, keypoints_2d).",
    )
    parser.add_argument(
        "--num_positive_candidates",
        type=int,
        default=1,
        help="HandCLR: the positive is drawn among this many nearest neighbours (1: top-1).",
    )
    parser.add_argument(
        "--negative_weighting",
        choices=NEGATIVE_WEIGHTINGS,
        default="distance",
        help="HandCLR's negative weights: distance, (d - min d) / (max d - min d), far poses pushed apart most; or "
        "closeness, (max d - d) / (max d - min d), the positives' formula.",
    )
    parser.add_argument("--output_dir", type=str, default="outputs/handclr")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument(
        "--equivariance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Undo each view's rotation and translation on the projection read as 2D points (PeCLR; default: on "
        "for peclr and handclr, off for simclr).",
    )
    parser.add_argument("--projection_hidden_dim", type=int, default=512)
    parser.add_argument("--projection_dim", type=int, default=128)
    parser.add_argument(
        "--pretrained_backbone",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Start from the variant's ImageNet weights (config.backbone, e.g. microsoft/resnet-50; needs them "
        "cached or a network).",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Colour jitter, crop jitter (scale, shift) and rotation of each view.",
    )
    parser.add_argument("--rotation_degrees", type=float, default=45.0)
    parser.add_argument("--max_steps", type=int, default=1000, help="Optimiser steps (0: use --num_epochs).")
    parser.add_argument("--num_epochs", type=int, default=100)
    parser.add_argument("--max_train_minutes", type=float, default=None)
    parser.add_argument("--train_batch_size", type=int, default=64, help="Per-process batch size (pairs).")
    parser.add_argument(
        "--global_batch_size",
        type=int,
        default=None,
        help="Pairs per optimiser step over all processes and accumulation steps; sets --train_batch_size.",
    )
    parser.add_argument("--optimizer", choices=("lars_adam", "adam", "adamw"), default="lars_adam")
    parser.add_argument("--lars_trust_coefficient", type=float, default=1e-3)
    parser.add_argument(
        "--learning_rate", type=float, default=1e-4, help="Base rate, scaled by --lr_scaling for the global batch."
    )
    parser.add_argument("--lr_scaling", choices=("sqrt", "linear", "none"), default="sqrt")
    parser.add_argument("--weight_decay", type=float, default=1e-6, help="Not on biases and norm parameters.")
    parser.add_argument("--lr_scheduler", choices=("cosine", "constant", "step"), default="cosine")
    parser.add_argument("--lr_warmup_epochs", type=float, default=0.0)
    parser.add_argument("--lr_warmup_steps", type=int, default=0, help="Added to --lr_warmup_epochs.")
    parser.add_argument("--lr_step_epochs", type=int, default=50)
    parser.add_argument("--lr_step_gamma", type=float, default=0.25)
    parser.add_argument("--max_grad_norm", type=float, default=None, help="Clip gradients (default: not).")
    add_run_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse pretrain.py's argv; a `--recipe` file supplies defaults that explicit flags override. Checks every
    value."""
    args = parse_with_recipe(build_parser(), argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Fail at start, naming the argument, for values that would fail later."""
    args.config = resolve_variant(args.config)
    if args.data_seed is None:
        args.data_seed = args.seed
    if args.image_size is not None and (args.image_size < 32 or args.image_size % 32):
        raise ValueError(f"--image_size must be a multiple of 32 (the backbone's stride), got {args.image_size}")
    if args.equivariance is None:
        args.equivariance = args.objective in ("peclr", "handclr")
    if args.objective == "handclr" and args.pairs is None:
        raise ValueError("--objective handclr needs --pairs (the folder `clip-hand3d mine-pairs` writes)")
    if args.objective != "handclr" and args.pairs is not None:
        raise ValueError(f"--pairs is HandCLR's; --objective {args.objective} takes two views of each image")
    check_run_args(args)
    for name in (
        "train_batch_size",
        "num_epochs",
        "num_positive_candidates",
        "projection_hidden_dim",
        "projection_dim",
    ):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.global_batch_size is not None and args.global_batch_size < 1:
        raise ValueError(f"--global_batch_size must be >= 1, got {args.global_batch_size}")
    if args.equivariance and args.projection_dim % 2:
        raise ValueError(
            f"--equivariance reads the projection as 2D points: --projection_dim must be even, got {args.projection_dim}"
        )
    if args.max_steps < 0:
        raise ValueError(f"--max_steps must be >= 0 (0: run --num_epochs), got {args.max_steps}")
    for name in ("learning_rate", "temperature", "lars_trust_coefficient"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name} must be > 0, got {getattr(args, name)}")
    for name in ("weight_decay", "lr_warmup_epochs", "lr_warmup_steps", "rotation_degrees"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
