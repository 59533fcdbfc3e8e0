"""`clip-hand3d evaluate`: score a saved model on a held-out split as FreiHAND does.

    clip-hand3d evaluate --model outputs/tiny --dataset synthetic --json scores.json --freihand-pred pred.json

Prints the score table; writes the scores (and PCK curves) as JSON, the predictions in FreiHAND's `pred.json`
format and the PCK curve plot when asked. The prediction and scoring are `clip_hand3d.evaluation`'s.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from clip_hand3d.evaluation import format_scores, predict, score_predictions, write_freihand_predictions
from clip_hand3d.modeling import CLIPHand3DModel
from clip_hand3d.variants import load_processor


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `evaluate` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser("evaluate", help="Score a model on a held-out split as FreiHAND does.")
    parser.add_argument("--model", required=True, help="Model folder or Hub repo id.")
    parser.add_argument(
        "--dataset", required=True, help="synthetic[:N], freihand:PATH, rhd:PATH, stb:PATH (joined by '+')."
    )
    parser.add_argument("--split", choices=("evaluation", "training"), default="evaluation")
    parser.add_argument("--eval-samples", type=int, default=500, help="Held-out synthetic samples.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=str, default=None, help="Write the scores (and PCK curves) here.")
    parser.add_argument(
        "--freihand-pred", type=str, default=None, help="Write predictions in FreiHAND's pred.json format."
    )
    parser.add_argument("--plots", type=str, default=None, help="Folder for the PCK curve PNG.")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> dict:
    """`clip-hand3d evaluate`: load, predict, score, print, write."""
    from clip_hand3d.plots import plot_pck_curves
    from clip_hand3d.training.data import PromptCollator, load_split, training_transform, with_sample_transform

    model = CLIPHand3DModel.from_pretrained(args.model, with_text_model=False).eval()
    processor = load_processor(args.model, model.config)
    config = model.config
    rows = load_split(
        args.dataset, train=args.split == "training", image_size=config.image_size, eval_samples=args.eval_samples
    )
    dataloader = DataLoader(
        with_sample_transform(rows, training_transform(processor)),
        batch_size=args.batch_size,
        collate_fn=PromptCollator(None),
    )
    predictions = predict(model, dataloader)
    scores = score_predictions(predictions)
    print(format_scores(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    if args.freihand_pred:
        roots = np.asarray(rows["joints_xyz"], dtype=np.float64)[:, 0]
        write_freihand_predictions(args.freihand_pred, predictions, roots)
    if args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)
        plot_pck_curves(
            {"PA joints": (scores["pck_thresholds_mm"], scores["pck_joints"])}, Path(args.plots) / "pck_curve.png"
        )
    return scores
