"""Model cards and pushing trained models to the Hugging Face Hub."""

import argparse
import shlex
import string
import sys
from pathlib import Path

from huggingface_hub import HfApi

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "MODEL_CARD.md"
SCORE_FIELDS = (
    "pa_mpjpe",
    "pa_mpvpe",
    "mpjpe",
    "auc_joints",
    "f5",
    "f15",
    "mean_pose_pa_mpjpe",
    "mean_shape_pa_mpjpe",
)


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _loss_weights(config) -> str:
    """The loss weights of `config` in words, naming the terms that are not in the paper."""
    weights = (
        f"pose {config.loss_weight_pose:g}, mesh {config.loss_weight_mesh:g}, "
        f"consistency {config.loss_weight_consistency:g}, CLIP {config.loss_weight_clip:g}"
    )
    if config.loss_weight_joint_offsets > 0:
        return weights + f", and joint offsets {config.loss_weight_joint_offsets:g} (not in the paper)"
    return weights + " (the paper's losses)"


def model_card_values(output_dir: Path, args: argparse.Namespace, scores: dict) -> dict[str, str]:
    """The `$name` fields of MODEL_CARD.md for a run; scores missing from `scores` read "n/a"."""
    from clip_hand3d.modeling import CLIPHand3DConfig

    config = CLIPHand3DConfig.from_pretrained(output_dir)
    weights = sum(path.stat().st_size for path in output_dir.glob("*.safetensors"))
    eval_dataset = args.eval_dataset or args.dataset
    values = {
        "model_name": args.hub_model_id or output_dir.name,
        "repo_id": args.hub_model_id or str(output_dir),
        "variant": Path(args.config).name,
        "num_parameters": f"{weights / 4 / 1e6:.1f}M" if weights else "n/a",
        "backbone": config.backbone if config.use_pretrained_backbone else "random init",
        "dataset": args.dataset,
        "eval_dataset": eval_dataset,
        "eval_dataset_type": eval_dataset.split(":")[0].split("+")[0],
        "stage": args.stage,
        "ablation": args.ablation,
        "steps": scores.get("steps", "n/a"),
        "num_samples": scores.get("num_samples", "n/a"),
        "topology": config.topology,
        "loss_weights": _loss_weights(config),
        "command": "accelerate launch train.py " + shlex.join(sys.argv[1:]),
    }
    values.update({name: _format(scores[name]) if name in scores else "n/a" for name in SCORE_FIELDS})
    return {name: str(value) for name, value in values.items()}


def write_model_card(
    output_dir: str | Path, args: argparse.Namespace, scores: dict, template: Path = MODEL_CARD_TEMPLATE
) -> Path:
    """Fill MODEL_CARD.md for the run in `output_dir` and write it as `output_dir/README.md`.

    Raises FileNotFoundError naming the template when the package runs outside its source tree.
    """
    output_dir = Path(output_dir)
    if not template.is_file():
        raise FileNotFoundError(
            f"model card template {template} not found (train.py runs from the clip-hand3d source tree)"
        )
    card = string.Template(template.read_text()).substitute(model_card_values(output_dir, args, scores))
    path = output_dir / "README.md"
    path.write_text(card)
    return path


def push_output_dir(output_dir: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create `repo_id` if needed and upload the model, processor, card, metrics and plots (no checkpoints)."""
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", ".checkpoint-*", "logs/*"],
        commit_message="Upload CLIP-Hand3D model",
    )
    return commit.commit_url
