"""Model card filling (also from a non-editable install) and the Hub upload call (the Hub itself is replaced by a
recorder: no network here)."""

import shutil
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

from clip_hand3d import hub

REPO = Path(__file__).resolve().parents[1]
# What `pip install .` needs of the source tree.
PACKAGE_FILES = ("setup.py", "pyproject.toml", "README.md")
PACKAGE_FOLDERS = ("clip_hand3d", "modeling", "hub_configs")
# Run by the fresh venv's python: a tiny model saved and its card written by the installed package.
CARD_FROM_INSTALL = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import clip_hand3d
    from clip_hand3d.hub import TrainingRun, write_model_card
    from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
    from clip_hand3d.variants import resolve_variant

    output_dir = Path(sys.argv[1])
    CLIPHand3DModel(CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-tiny"))).save_pretrained(output_dir)
    run = TrainingRun(
        config_name="clip-hand3d-tiny", dataset="synthetic:16", eval_dataset="synthetic:16", stage=2,
        ablation="none", steps=4, command="accelerate launch train.py --config clip-hand3d-tiny",
    )
    write_model_card(output_dir, run, {"pa_mpjpe": 12.3456, "num_samples": 8})
    print(clip_hand3d.__file__)
    """
)


class RecordingApi:
    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, exist_ok, private):
        self.calls.append(("create_repo", repo_id, exist_ok, private, self.token))

    def upload_folder(self, repo_id, folder_path, ignore_patterns, commit_message):
        self.calls.append(("upload_folder", repo_id, folder_path, tuple(ignore_patterns)))
        return Namespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


def test_push_creates_the_repo_and_uploads_without_checkpoints(tmp_path, monkeypatch):
    RecordingApi.calls = []
    monkeypatch.setattr(hub, "HfApi", RecordingApi)
    url = hub.push_output_dir(tmp_path, "user/clip-hand3d-tiny", token="secret")
    assert url == "https://huggingface.co/user/clip-hand3d-tiny/commit/0"
    assert RecordingApi.calls[0] == ("create_repo", "user/clip-hand3d-tiny", True, False, "secret")
    name, repo_id, folder, ignored = RecordingApi.calls[1]
    assert (name, repo_id, folder) == ("upload_folder", "user/clip-hand3d-tiny", str(tmp_path))
    assert "checkpoint-*" in ignored


def tiny_run(**overrides) -> hub.TrainingRun:
    values = dict(
        config_name="clip-hand3d-tiny", dataset="synthetic:16", eval_dataset="synthetic:16", stage=2, ablation="none",
        steps=4, command="accelerate launch train.py --config clip-hand3d-tiny", repo_id="user/tiny",
    )  # fmt: skip
    return hub.TrainingRun(**{**values, **overrides})


def test_model_card_fills_every_field(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    scores = {"pa_mpjpe": 12.3456, "pa_mpvpe": 13.0, "mpjpe": 20.0, "auc_joints": 0.5, "f5": 0.2, "f15": 0.7,
              "mean_pose_pa_mpjpe": 30.0, "steps": 4, "num_samples": 8}  # fmt: skip
    card = hub.write_model_card(tmp_path, tiny_run(), scores).read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "| PA-MPJPE (mm) | 12.35 |" in card and "F@5 mm / F@15 mm | 0.2 / 0.7 |" in card
    assert 'AutoModel.from_pretrained("user/tiny", trust_remote_code=True' in card
    assert "- Loss weights: pose 1, mesh 0.05, consistency 0.1, CLIP 0.1 (the paper's losses)\n" in card
    assert "- Training data: `synthetic:16`, stage 2, ablation `none`, 4 optimiser steps\n" in card
    assert "```\naccelerate launch train.py --config clip-hand3d-tiny\n```" in card
    assert "$" not in card.split("```bibtex")[0]


def test_model_card_without_repo_id_names_the_folder_and_missing_scores_read_na(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "tiny-run")
    card = hub.write_model_card(tmp_path / "tiny-run", tiny_run(repo_id=None), {}).read_text()
    assert "\n# tiny-run\n" in card and "| PA-MPJPE (mm) | n/a |" in card
    assert f'AutoModel.from_pretrained("{tmp_path / "tiny-run"}"' in card


def test_the_template_is_package_data():
    template = hub.model_card_template()
    assert template.startswith("---\nlibrary_name: transformers") and "$pa_mpjpe" in template


def test_model_card_from_a_non_editable_install(tmp_path):
    # A copy of the package's sources, so that the build leaves nothing in the working tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGE_FILES:
        shutil.copy(REPO / name, source / name)
    for name in PACKAGE_FOLDERS:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # The venv sees this environment's torch, transformers, pip and setuptools (without a pip of its own, whose
    # older setuptools cannot build a wheel here); --ignore-installed puts clip-hand3d itself in it, ahead of the
    # editable install.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed"]
    subprocess.run([*pip, str(source)], check=True, cwd=tmp_path)
    result = subprocess.run(
        [python, "-I", "-c", CARD_FROM_INSTALL, str(tmp_path / "model")],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    installed_at = Path(result.stdout.strip().splitlines()[-1])
    assert installed_at.is_relative_to(venv), f"clip_hand3d came from {installed_at}, not the fresh install"
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| PA-MPJPE (mm) | 12.35 |" in card and "- Variant: `clip-hand3d-tiny`" in card
    assert "- Held-out data: `synthetic:16` (8 samples)" in card
    assert "$" not in card.split("```bibtex")[0]
