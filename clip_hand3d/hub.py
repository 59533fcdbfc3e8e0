"""Model cards and pushing trained models to the Hugging Face Hub.

The card template ships with the package (`clip_hand3d/templates/model_card.md`, a `string.Template`); it is filled
from plain values: a `TrainingRun`, the held-out scores, and the config and weights saved in the output folder.
"""

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huggingface_hub import HfApi

MODEL_CARD_TEMPLATE = "templates/model_card.md"
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


@dataclass(frozen=True)
class TrainingRun:
    """What the model card says about the run that trained a model.

    Attributes:
        config_name: the variant or config folder name, e.g. "clip-hand3d-tiny".
        dataset: the training data spec, e.g. "synthetic:30000" or "freihand:/data/FreiHAND_pub_v2".
        eval_dataset: the held-out data spec the scores were computed on.
        stage: the training stage (1: encoder and joint regressor only, 2: end to end).
        ablation: the ablation name, "none" for the full model.
        steps: optimiser steps taken.
        command: the command line that trained the model, as one shell string.
        repo_id: the Hub repo id the model is pushed to; None names the output folder instead.
    """

    config_name: str
    dataset: str
    eval_dataset: str
    stage: int
    ablation: str
    steps: int
    command: str
    repo_id: str | None = None


def model_card_template() -> str:
    """The text of the packaged model card template."""
    return resources.files("clip_hand3d").joinpath(MODEL_CARD_TEMPLATE).read_text(encoding="utf-8")


def model_card_values(output_dir: Path, run: TrainingRun, scores: dict) -> dict[str, str]:
    """The `$name` fields of the card for `run`, whose model is saved in `output_dir`; scores missing from `scores`
    (in mm and [0, 1], as `clip_hand3d.evaluation.score_predictions` gives them) read "n/a"."""
    from clip_hand3d.modeling import CLIPHand3DConfig

    config = CLIPHand3DConfig.from_pretrained(output_dir)
    weights = sum(path.stat().st_size for path in output_dir.glob("*.safetensors"))
    values = {
        "model_name": run.repo_id or output_dir.name,
        "repo_id": run.repo_id or str(output_dir),
        "variant": run.config_name,
        "num_parameters": f"{weights / 4 / 1e6:.1f}M" if weights else "n/a",
        "backbone": config.backbone if config.use_pretrained_backbone else "random init",
        "dataset": run.dataset,
        "eval_dataset": run.eval_dataset,
        "eval_dataset_type": run.eval_dataset.split(":")[0].split("+")[0],
        "stage": run.stage,
        "ablation": run.ablation,
        "steps": run.steps,
        "num_samples": scores.get("num_samples", "n/a"),
        "topology": config.topology,
        "loss_weights": _loss_weights(config),
        "command": run.command,
    }
    values.update({name: _format(scores[name]) if name in scores else "n/a" for name in SCORE_FIELDS})
    return {name: str(value) for name, value in values.items()}


def write_model_card(output_dir: str | Path, run: TrainingRun, scores: dict, template: str | None = None) -> Path:
    """Fill the model card (`template`, default the packaged one) for `run` and write it as `output_dir/README.md`.

    `output_dir` holds the saved model (config.json and weights); returns the card's path.
    """
    output_dir = Path(output_dir)
    template = model_card_template() if template is None else template
    card = string.Template(template).substitute(model_card_values(output_dir, run, scores))
    path = output_dir / "README.md"
    path.write_text(card, encoding="utf-8")
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
