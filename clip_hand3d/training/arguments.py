"""Command-line arguments of train.py, recipe files, and the checks that fail at start, naming the problem."""

import argparse
import json
from pathlib import Path

from clip_hand3d.training.data import parse_dataset_spec
from clip_hand3d.training.precision import MIXED_PRECISIONS
from clip_hand3d.variants import resolve_variant

ABLATIONS = {
    "none": {},
    "no_clip": {"use_clip_loss": False},
    "no_feature_projection": {"use_feature_projection": False},
    "no_sparse_to_dense": {"use_sparse_to_dense": False},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train CLIP-Hand3D (launch with `accelerate launch train.py ...`).")
    parser.add_argument(
        "--recipe",
        type=str,
        default=None,
        help="JSON file of argument defaults, e.g. recipes/freihand_paper_stage1.json.",
    )
    parser.add_argument(
        "--config", type=str, default="clip-hand3d-tiny", help="Variant name (hub_configs/) or a config folder."
    )
    parser.add_argument(
        "--init_from",
        type=str,
        default=None,
        help="Model folder whose weights start the run (stage 2 from stage 1), or an encoder checkpoint of "
        "pretrain.py (OUTPUT_DIR/encoder), whose backbone starts the --config variant's.",
    )
    parser.add_argument(
        "--dataset",
        type=str,
        default="synthetic:4000",
        help="synthetic[:N], freihand:PATH, rhd:PATH, stb:PATH, joined by '+'.",
    )
    parser.add_argument(
        "--eval_dataset",
        type=str,
        default=None,
        help="SPEC of the held-out data (default: the held-out splits of --dataset).",
    )
    parser.add_argument("--eval_samples", type=int, default=500, help="Held-out synthetic samples.")
    parser.add_argument("--output_dir", type=str, default="outputs/clip-hand3d")
    parser.add_argument(
        "--stage", type=int, choices=(1, 2), default=2, help="1: encoder + joint regressor only; 2: end to end."
    )
    parser.add_argument(
        "--stage1_steps",
        type=int,
        default=0,
        help="With --stage 2: the first this many steps train stage 1 only (mesh skipped), then end to end: the "
        "paper's two stages in one run.",
    )
    parser.add_argument(
        "--stage2_minutes",
        type=float,
        default=None,
        help="With --stage1_steps and --max_train_minutes: stage 2 starts when this many minutes of the budget are "
        "left, if --stage1_steps has not started it yet, so that a machine slower than the plan still trains the "
        "mesh.",
    )
    parser.add_argument("--ablation", choices=sorted(ABLATIONS), default="none", help="The paper's table 3 switches.")
    parser.add_argument(
        "--pretrained_encoders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Load ImageNet ResNet and CLIP text weights by name (default: the config's use_pretrained_* flags; needs a network).",
    )
    parser.add_argument(
        "--two_views",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Two augmentations per image for the consistency losses (the paper's stage 2).",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Random rotation, scale, shift and colour of the training crops.",
    )
    parser.add_argument(
        "--augment_degradations",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="With --augment, also an occluding patch, blur and pixel noise, each on 30%% of the crops.",
    )
    parser.add_argument("--max_steps", type=int, default=850, help="Optimiser steps (0: use --num_epochs).")
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument(
        "--max_train_minutes", type=float, default=None, help="Stop training after this wall time (minutes)."
    )
    parser.add_argument("--train_batch_size", type=int, default=32, help="Per-process batch size.")
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument(
        "--clip_batch_size",
        type=int,
        default=None,
        help="Samples of each batch used by the CLIP loss (paper: 32 of 48).",
    )
    parser.add_argument(
        "--loss_weight_joint_offsets",
        type=float,
        default=None,
        help="Weight of the L1 loss on the offsets between every pair of joints (not in the paper; default: the "
        "config's, 0 for the named variants).",
    )
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--lr_scheduler", choices=("step", "cosine", "constant"), default="cosine")
    parser.add_argument("--lr_step_epochs", type=int, default=50, help="step schedule: decay every this many epochs.")
    parser.add_argument("--lr_step_gamma", type=float, default=0.25, help="step schedule: factor of each decay.")
    parser.add_argument("--lr_warmup_steps", type=int, default=0)
    parser.add_argument("--max_grad_norm", type=float, default=1.0)
    parser.add_argument(
        "--eval_steps",
        type=int,
        default=None,
        help="Score the held-out split every this many steps (logged as eval_pa_mpjpe); the end of the run always does.",
    )
    add_run_arguments(parser)
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", type=str, default=None)
    parser.add_argument("--hub_token", type=str, default=None)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run-handling arguments train.py and pretrain.py share: precision, seed, workers, checkpoints, logs."""
    group = parser.add_argument_group("run handling")
    group.add_argument("--gradient_accumulation_steps", type=int, default=1)
    group.add_argument(
        "--mixed_precision",
        choices=MIXED_PRECISIONS,
        default=None,
        help="auto: bf16 where the device computes bfloat16 natively (a CUDA GPU with bf16; a CPU with AVX-512 BF16 "
        "or AMX), no (float32) elsewhere. Default: accelerate's config.",
    )
    group.add_argument(
        "--channels_last",
        action="store_true",
        help="Convolution weights and images in channels-last memory format: faster convolutions on CPU (oneDNN) "
        "and on tensor cores, most of all with --mixed_precision bf16/fp16.",
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--dataloader_num_workers", type=int, default=0)
    group.add_argument(
        "--preprocessing_num_workers",
        type=int,
        default=None,
        help="Processes that render the synthetic hands (and, for train.py, crop the images) once, cached for "
        "later runs (default: this one).",
    )
    group.add_argument("--checkpointing_steps", type=int, default=500)
    group.add_argument("--checkpoints_total_limit", type=int, default=None)
    group.add_argument("--resume_from_checkpoint", type=str, default=None, help="'latest' or a checkpoint folder.")
    group.add_argument(
        "--max_consecutive_nan_steps", type=int, default=5, help="Stop after this many NaN losses in a row."
    )
    group.add_argument("--logging_steps", type=int, default=10)
    group.add_argument("--report_to", type=str, default="none", help="tensorboard, wandb, all or none.")


def check_run_args(args: argparse.Namespace) -> None:
    """`add_run_arguments`' checks: counts >= 1 (the optional ones when given)."""
    for name in ("gradient_accumulation_steps", "checkpointing_steps", "logging_steps", "max_consecutive_nan_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("checkpoints_total_limit", "preprocessing_num_workers", "dataloader_num_workers"):
        minimum = 0 if name == "dataloader_num_workers" else 1
        if getattr(args, name) is not None and getattr(args, name) < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, got {getattr(args, name)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse train.py's argv; a `--recipe` file supplies defaults that explicit flags override. Checks every value."""
    args = parse_with_recipe(build_parser(), argv)
    check_args(args)
    return args


def parse_with_recipe(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse argv with `parser`, whose `--recipe` file (JSON, see `read_recipe`) supplies the defaults that explicit
    flags override."""
    preliminary, _ = parser.parse_known_args(argv)
    if preliminary.recipe is not None:
        parser.set_defaults(**read_recipe(preliminary.recipe, parser))
    return parser.parse_args(argv)


def read_recipe(path: str, parser: argparse.ArgumentParser) -> dict:
    """Argument defaults from a JSON recipe; unknown keys are an error naming them."""
    recipe_path = Path(path)
    if not recipe_path.is_file():
        raise ValueError(f"--recipe {path}: no such file")
    values = json.loads(recipe_path.read_text())
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"--recipe {path}: unknown keys {unknown}")
    return values


def check_args(args: argparse.Namespace) -> None:
    """Fail at start, naming the argument, for values that would fail later."""
    args.config = resolve_variant(args.config)
    parse_dataset_spec(args.dataset)
    if args.eval_dataset is not None:
        parse_dataset_spec(args.eval_dataset)
    if args.init_from is not None and not Path(args.init_from).is_dir():
        raise ValueError(f"--init_from {args.init_from}: no such folder")
    check_run_args(args)
    for name in ("train_batch_size", "eval_batch_size", "num_epochs", "eval_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.stage1_steps < 0:
        raise ValueError(f"--stage1_steps must be >= 0, got {args.stage1_steps}")
    if args.stage1_steps > 0 and args.stage == 1:
        raise ValueError("--stage1_steps splits a --stage 2 run; with --stage 1 every step is stage 1")
    if args.stage2_minutes is not None:
        if args.stage1_steps == 0 or args.max_train_minutes is None:
            raise ValueError("--stage2_minutes needs --stage1_steps and --max_train_minutes")
        if not 0 < args.stage2_minutes < args.max_train_minutes:
            raise ValueError(
                f"--stage2_minutes must be > 0 and less than --max_train_minutes ({args.max_train_minutes}), got "
                f"{args.stage2_minutes}"
            )
    if args.max_steps < 0:
        raise ValueError(f"--max_steps must be >= 0 (0: run --num_epochs), got {args.max_steps}")
    for name in ("clip_batch_size", "eval_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.loss_weight_joint_offsets is not None and args.loss_weight_joint_offsets < 0:
        raise ValueError(f"--loss_weight_joint_offsets must be >= 0, got {args.loss_weight_joint_offsets}")
    if args.learning_rate <= 0:
        raise ValueError(f"--learning_rate must be > 0, got {args.learning_rate}")
    if args.augment_degradations and not args.augment:
        raise ValueError("--augment_degradations adds to --augment; it has no effect with --no-augment")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id")
