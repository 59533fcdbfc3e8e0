"""Model cards, and pushing trained models and the demo Space to the Hugging Face Hub.

The card's body ships with the package (`clip_hand3d/templates/model_card.md`, a `string.Template`), filled from
plain values: a `TrainingRun`, the held-out scores, and the config and weights saved in the output folder. Its
YAML metadata (licence, library, tags, datasets, base models, a `model-index` of the held-out scores) is built
with `huggingface_hub.ModelCardData`, so `huggingface_hub.ModelCard` reads it back.

`push_output_dir` (`clip-hand3d push`, `train.py --push_to_hub`) uploads a trained model's folder without its
checkpoints; `push_space` (`clip-hand3d push-space`) uploads the demo Space (`spaces_demo/`) pointed at a model.
Both check the token before anything is sent, raise `HubError` with what to do when the Hub cannot be reached or
refuses, and never change or delete local files.
"""

import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, SpaceCard, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError

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
# The model's own held-out scores in the card's `model-index` (the mean-pose / mean-shape baselines are not).
MODEL_INDEX_METRICS = {
    "pa_mpjpe": "PA-MPJPE (mm)",
    "pa_mpvpe": "PA-MPVPE (mm)",
    "mpjpe": "MPJPE, root-relative (mm)",
    "auc_joints": "PCK AUC 0-50 mm (aligned joints)",
    "f5": "F@5 mm (aligned vertices)",
    "f15": "F@15 mm (aligned vertices)",
}
CARD_TAGS = ["clip-hand3d", "hand-pose-estimation", "hand-mesh-recovery", "3d", "custom_code"]
TASK_TYPE, TASK_NAME = "keypoint-detection", "3D hand pose and mesh estimation"
# Never uploaded from a model folder: training checkpoints (with optimiser states) and logs (train.py's trackers
# write to `clip-hand3d/` in the output folder).
MODEL_IGNORE_PATTERNS = [
    "checkpoint-*",
    ".checkpoint-*",
    "clip-hand3d/*",
    "logs/*",
    "runs/*",
    "wandb/*",
    "*/__pycache__/*",
    ".cache/*",
]
# Never uploaded from the Space folder: caches and what running the demo locally leaves behind.
SPACE_IGNORE_PATTERNS = ("__pycache__", "*.pyc", ".cache", ".gradio", "flagged", ".ipynb_checkpoints", ".DS_Store")
SPACE_MODEL_VARIABLE = "CLIP_HAND3D_MODEL"
SPACE_WHEELS = "wheels"
# What building the package's wheel needs of its source checkout.
PACKAGE_FILES = ("setup.py", "pyproject.toml", "README.md")
PACKAGE_FOLDERS = ("clip_hand3d", "modeling", "hub_configs")


class HubError(RuntimeError):
    """A push to the Hub could not be done; the message says why and what to do (local files are untouched)."""


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
        eval_split: the split of `eval_dataset` the scores are of (train.py scores the "evaluation" split).
        encoder_init: the pre-trained encoder (pretrain.py's) the backbone started from, in words; None for none.
    """

    config_name: str
    dataset: str
    eval_dataset: str
    stage: int
    ablation: str
    steps: int
    command: str
    repo_id: str | None = None
    eval_split: str = "evaluation"
    encoder_init: str | None = None


def redact_token(argv: list[str], option: str = "--hub_token") -> list[str]:
    """The command line `argv` with the value of `option` (a Hub token: "--hub_token T" or "--hub_token=T")
    replaced by "***", for the model card and logs."""
    redacted, hide_next = [], False
    for arg in argv:
        if hide_next:
            arg, hide_next = "***", False
        elif arg == option:
            hide_next = True
        elif arg.startswith(option + "="):
            arg = option + "=***"
        redacted.append(arg)
    return redacted


def model_card_template() -> str:
    """The text of the packaged model card body template."""
    return resources.files("clip_hand3d").joinpath(MODEL_CARD_TEMPLATE).read_text(encoding="utf-8")


def dataset_names(spec: str) -> list[str]:
    """The dataset kinds of a data spec: "synthetic:2000+freihand:/data/FreiHAND" -> ["synthetic", "freihand"]."""
    return list(dict.fromkeys(part.strip().partition(":")[0] for part in spec.split("+")))


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
        "backbone": run.encoder_init or (config.backbone if config.use_pretrained_backbone else "random init"),
        "dataset": run.dataset,
        "eval_dataset": run.eval_dataset,
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


def model_card_data(output_dir: Path, run: TrainingRun, scores: dict) -> ModelCardData:
    """The card's metadata: licence, library, tags, the datasets, the pretrained encoders the model started from
    (`base_model`, when any) and a `model-index` with each held-out score of `MODEL_INDEX_METRICS` in `scores`."""
    from clip_hand3d.modeling import CLIPHand3DConfig

    config = CLIPHand3DConfig.from_pretrained(output_dir)
    base_models = [config.backbone] if config.use_pretrained_backbone and config.backbone else []
    if config.use_pretrained_text_model and config.text_model_name_or_path:
        base_models.append(config.text_model_name_or_path)
    model_name = run.repo_id or output_dir.name
    results = [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=dataset_names(run.eval_dataset)[0],
            dataset_name=run.eval_dataset,
            dataset_split=run.eval_split,
            metric_type=name,
            metric_name=label,
            metric_value=float(scores[name]),
        )
        for name, label in MODEL_INDEX_METRICS.items()
        if isinstance(scores.get(name), int | float)
    ]
    return ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag=TASK_TYPE,
        tags=list(CARD_TAGS),
        datasets=list(dict.fromkeys(dataset_names(run.dataset) + dataset_names(run.eval_dataset))),
        base_model=base_models or None,
        model_name=model_name,
        eval_results=results or None,
    )


def write_model_card(output_dir: str | Path, run: TrainingRun, scores: dict, template: str | None = None) -> Path:
    """Fill the model card (body `template`, default the packaged one; metadata `model_card_data`) for `run` and
    write it as `output_dir/README.md`.

    `output_dir` holds the saved model (config.json and weights); returns the card's path.
    """
    output_dir = Path(output_dir)
    template = model_card_template() if template is None else template
    body = string.Template(template).substitute(model_card_values(output_dir, run, scores))
    card = ModelCard(f"---\n{model_card_data(output_dir, run, scores).to_yaml()}\n---\n\n{body}")
    path = output_dir / "README.md"
    card.save(path)
    return path


def check_model_folder(output_dir: str | Path) -> ModelCard:
    """Raise a ValueError naming what is missing unless `output_dir` holds a saved model (config.json, weights)
    and a model card whose metadata parses; returns the card."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise ValueError(f"model folder {output_dir} does not exist")
    if not (output_dir / "config.json").is_file() or not any(output_dir.glob("*.safetensors")):
        raise ValueError(f"{output_dir} holds no saved model (config.json and *.safetensors, as train.py saves)")
    readme = output_dir / "README.md"
    if not readme.is_file():
        raise ValueError(f"{output_dir} has no model card README.md (train.py writes it with write_model_card)")
    try:
        card = ModelCard.load(readme)
    except ValueError as error:
        raise ValueError(f"{readme}: the card's metadata does not parse ({error})") from None
    if not card.data.license or not card.data.library_name:
        raise ValueError(f"{readme}: the card's metadata needs a license and a library_name")
    return card


def hub_api(token: str | None = None) -> HfApi:
    """An `HfApi` with `token`, else the one saved by `hf auth login` or set as HF_TOKEN; HubError without one."""
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: run `hf auth login`, set HF_TOKEN or pass --token")
    return HfApi(token=token)


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn the Hub's refusals and network failures inside the block into a HubError saying `what` failed."""
    try:
        yield
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        hint = " (is the token valid, with write access to this repo?)" if status in (401, 403) else ""
        raise HubError(f"{what}: the Hub answered {status}{hint}: {error}; nothing local was changed") from None
    except (HTTPError, OSError) as error:  # the Hub client's connection errors
        raise HubError(f"{what}: could not reach the Hub ({error}); nothing local was changed") from None


def push_output_dir(
    output_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
) -> str:
    """Create the model repo `repo_id` if needed and upload `output_dir`'s model, processor, card, metrics and
    plots (no checkpoints or logs: `MODEL_IGNORE_PATTERNS`) to branch `revision` (default: main, else created
    from it); returns the commit's URL.

    Raises:
        ValueError: `output_dir` holds no saved model or no parsable card.
        HubError: no token, the Hub refused or could not be reached.
    """
    check_model_folder(output_dir)
    api = hub_api(token)
    with hub_errors(f"pushing {output_dir} to {repo_id}"):
        api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(output_dir),
            repo_type="model",
            revision=revision,
            ignore_patterns=MODEL_IGNORE_PATTERNS,
            commit_message="Upload CLIP-Hand3D model",
        )
    return commit.commit_url


def push_space(
    space_folder: str | Path,
    space_id: str,
    model_id: str,
    token: str | None = None,
    private: bool = False,
    wheel: str | Path | None = None,
) -> str:
    """Upload the demo Space `space_folder` (every file but caches) as the Gradio Space `space_id`, pointed at
    the model `model_id`: its README front matter lists the model, and the Space variable CLIP_HAND3D_MODEL names
    it. The package's wheel (`wheel`, else built from this source checkout) goes in `wheels/`, where the Space's
    requirements.txt installs it from. The upload is staged in a temporary copy; returns the commit's URL.

    Raises:
        ValueError: the folder lacks app.py, README.md or requirements.txt, or its requirements name a wheel
            that is not staged.
        HubError: no token, the Hub refused or could not be reached.
    """
    space_folder = Path(space_folder)
    for name in ("app.py", "README.md", "requirements.txt"):
        if not (space_folder / name).is_file():
            raise ValueError(f"the Space folder {space_folder} has no {name}")
    api = hub_api(token)
    with tempfile.TemporaryDirectory() as staging:
        stage = stage_space(space_folder, Path(staging) / "space", model_id, wheel)
        with hub_errors(f"pushing the Space {space_folder} to {space_id}"):
            variables = [{"key": SPACE_MODEL_VARIABLE, "value": model_id}]
            api.create_repo(
                space_id,
                repo_type="space",
                space_sdk="gradio",
                exist_ok=True,
                private=private,
                space_variables=variables,
            )
            api.add_space_variable(space_id, SPACE_MODEL_VARIABLE, model_id)
            commit = api.upload_folder(
                repo_id=space_id,
                folder_path=str(stage),
                repo_type="space",
                commit_message=f"Upload the CLIP-Hand3D demo for {model_id}",
            )
    return commit.commit_url


def stage_space(space_folder: Path, stage: Path, model_id: str, wheel: str | Path | None = None) -> Path:
    """Copy the Space folder (no caches) to `stage`, list `model_id` in its README's front matter and put the
    package's wheel in `stage/wheels/`; returns `stage`."""
    shutil.copytree(space_folder, stage, ignore=shutil.ignore_patterns(*SPACE_IGNORE_PATTERNS))
    card = SpaceCard.load(stage / "README.md")
    card.data.models = [model_id]
    card.save(stage / "README.md")
    wheels = stage / SPACE_WHEELS
    wheels.mkdir(exist_ok=True)
    if wheel is not None:
        shutil.copy(wheel, wheels / Path(wheel).name)
    else:
        build_wheel(wheels)
    _check_wheel_requirements(stage)
    return stage


def build_wheel(destination: Path) -> Path:
    """Build the package's wheel from this source checkout into `destination` (from a copy of the sources, so
    nothing is written to the checkout); returns the wheel's path."""
    root = Path(__file__).resolve().parents[1]
    if not all((root / name).exists() for name in PACKAGE_FILES + PACKAGE_FOLDERS):
        raise ValueError(f"building the package's wheel needs its source checkout; {root} is not one (give a wheel)")
    with tempfile.TemporaryDirectory() as sources:
        for name in PACKAGE_FILES:
            shutil.copy(root / name, Path(sources) / name)
        for name in PACKAGE_FOLDERS:
            shutil.copytree(root / name, Path(sources) / name, ignore=shutil.ignore_patterns("__pycache__"))
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        subprocess.run([*command, "-w", str(destination), sources], check=True, capture_output=True)
    return next(destination.glob("clip_hand3d-*.whl"))


def _check_wheel_requirements(stage: Path) -> None:
    """Raise unless every local wheel the Space's requirements.txt names is in the staged folder."""
    for line in (stage / "requirements.txt").read_text(encoding="utf-8").splitlines():
        requirement = line.split("#")[0].strip()
        if requirement.endswith(".whl") and not (stage / requirement).is_file():
            staged = sorted(path.name for path in (stage / SPACE_WHEELS).glob("*.whl"))
            raise ValueError(f"requirements.txt names {requirement}, but the staged wheels are {staged}")


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
