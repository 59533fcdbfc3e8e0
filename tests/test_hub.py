"""Model card filling (also from a non-editable install) and the Hub upload call (the Hub itself is replaced by a
recorder: no network here)."""

import functools
import importlib
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, SpaceCard
from huggingface_hub.errors import HfHubHTTPError, HTTPError
from huggingface_hub.utils import filter_repo_objects

from clip_hand3d import hub

REPO = Path(__file__).resolve().parents[1]
# The HTTP client huggingface_hub uses (its errors and responses), whichever it is in this version.
http = importlib.import_module(HTTPError.__module__)
# Run with the installed wheel first on the path: a tiny model saved and its card written by the installed package.
CARD_FROM_INSTALL = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
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
    """Stands in for `HfApi`: records every call, and what `upload_folder` would send (the files its own filter
    keeps, and the README's text), or raises `fail_with`."""

    calls: list = []
    fail_with: Exception | None = None

    def __init__(self, token=None):
        self.token = token

    def _record(self, name: str, *args, **kwargs):
        if RecordingApi.fail_with is not None:
            raise RecordingApi.fail_with
        self.calls.append((name, args, {**kwargs, "token": self.token}))

    def create_repo(self, repo_id, **kwargs):
        self._record("create_repo", repo_id, **kwargs)

    def create_branch(self, repo_id, **kwargs):
        self._record("create_branch", repo_id, **kwargs)

    def add_space_variable(self, repo_id, key, value):
        self._record("add_space_variable", repo_id, key, value)

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
        sent = sorted(filter_repo_objects(files, ignore_patterns=kwargs.get("ignore_patterns")))
        readme = (folder / "README.md").read_text() if (folder / "README.md").is_file() else None
        self._record("upload_folder", files=sent, readme=readme, **kwargs)
        return Namespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0")

    @classmethod
    def named(cls, name: str) -> list:
        return [call for call in cls.calls if call[0] == name]


def record_hub(monkeypatch) -> type[RecordingApi]:
    """Replace the Hub by `RecordingApi`, with a token saved."""
    RecordingApi.calls, RecordingApi.fail_with = [], None
    monkeypatch.setattr(hub, "HfApi", RecordingApi)
    monkeypatch.setattr(hub, "get_token", lambda: "saved-token")
    return RecordingApi


@pytest.fixture()
def hub_api(monkeypatch):
    return record_hub(monkeypatch)


def trained_folder(folder: Path, model) -> Path:
    """What train.py leaves: model, card, metrics, a plot, a checkpoint and logs."""
    model.save_pretrained(folder)
    hub.write_model_card(folder, tiny_run(), {"pa_mpjpe": 12.3456, "auc_joints": 0.5, "num_samples": 8})
    (folder / "metrics.json").write_text("{}")
    (folder / "pck_curve.png").write_bytes(b"png")
    (folder / "checkpoint-4").mkdir()
    (folder / "checkpoint-4" / "optimizer.bin").write_bytes(b"state")
    (folder / "logs").mkdir()
    (folder / "logs" / "events.out").write_text("log")
    return folder


def snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_push_creates_the_repo_and_uploads_without_checkpoints(tmp_path, tiny_model, hub_api):
    folder = trained_folder(tmp_path / "run", tiny_model)
    url = hub.push_output_dir(folder, "user/clip-hand3d-tiny", private=True, revision="v1")
    assert url == "https://huggingface.co/user/clip-hand3d-tiny/commit/0"
    (create,), (branch,), (upload,) = (
        hub_api.named("create_repo"),
        hub_api.named("create_branch"),
        hub_api.named("upload_folder"),
    )
    assert create[1] == ("user/clip-hand3d-tiny",)
    assert create[2] == {"repo_type": "model", "exist_ok": True, "private": True, "token": "saved-token"}
    assert branch[2]["branch"] == "v1" and branch[2]["exist_ok"]
    sent = upload[2]
    assert sent["repo_type"] == "model" and sent["revision"] == "v1" and sent["folder_path"] == str(folder)
    assert {"README.md", "config.json", "metrics.json", "model.safetensors", "pck_curve.png"} <= set(sent["files"])
    assert not any(name.startswith(("checkpoint-", "logs/")) for name in sent["files"])
    assert ModelCard(sent["readme"]).data.license == "apache-2.0"


@pytest.mark.parametrize(
    "failure, message",
    [
        (None, "no Hugging Face token: run `hf auth login`"),
        (HfHubHTTPError("401 Unauthorized", response=http.Response(401, request=http.Request("POST", "https://hf.co"))),
         "the Hub answered 401 \\(is the token valid"),
        (http.ConnectError("[Errno 111] Connection refused"), "could not reach the Hub"),
    ],
)  # fmt: skip
def test_a_missing_token_or_a_failed_push_says_why_and_deletes_nothing(tmp_path, tiny_model, hub_api, monkeypatch,
                                                                      failure, message):  # fmt: skip
    folder = trained_folder(tmp_path / "run", tiny_model)
    before = snapshot(folder)
    if failure is None:
        monkeypatch.setattr(hub, "get_token", lambda: None)
    hub_api.fail_with = failure
    with pytest.raises(hub.HubError, match=message):
        hub.push_output_dir(folder, "user/tiny")
    assert snapshot(folder) == before and hub_api.calls == []


def test_an_unreachable_hub_through_the_real_client(tmp_path, tiny_model, monkeypatch):
    """The real `HfApi`, pointed at a closed local port: its connection error becomes a HubError."""
    folder = trained_folder(tmp_path / "run", tiny_model)
    before = snapshot(folder)
    monkeypatch.setattr(hub, "HfApi", functools.partial(HfApi, endpoint="http://127.0.0.1:9"))
    with pytest.raises(hub.HubError, match="could not reach the Hub"):
        hub.push_output_dir(folder, "user/tiny", token="a-token")
    assert snapshot(folder) == before


def test_push_checks_the_folder_first(tmp_path, tiny_model, hub_api):
    with pytest.raises(ValueError, match="does not exist"):
        hub.push_output_dir(tmp_path / "missing", "user/tiny")
    with pytest.raises(ValueError, match="holds no saved model"):
        hub.push_output_dir(tmp_path, "user/tiny")
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no model card README.md"):
        hub.push_output_dir(tmp_path, "user/tiny")
    assert hub_api.calls == []


def space_folder(folder: Path) -> Path:
    """A Space like spaces_demo/, with caches that must stay home."""
    folder.mkdir()
    (folder / "app.py").write_text("print('demo')\n")
    (folder / "README.md").write_text("---\ntitle: Demo\nsdk: gradio\napp_file: app.py\n---\n\n# Demo\n")
    (folder / "requirements.txt").write_text(f"torch\n./wheels/{WHEEL}  # the package\n")
    (folder / "examples").mkdir()
    (folder / "examples" / "hand.png").write_bytes(b"png")
    for cache in ("__pycache__/app.cpython-311.pyc", ".gradio/cache.txt", "flagged/log.csv"):
        (folder / cache).parent.mkdir(exist_ok=True)
        (folder / cache).write_text("cache")
    return folder


WHEEL = "clip_hand3d-0.1.0-py3-none-any.whl"


def test_push_space_sends_the_space_pointed_at_the_model(tmp_path, hub_api):
    folder = space_folder(tmp_path / "space")
    (tmp_path / WHEEL).write_bytes(b"wheel")
    before = snapshot(folder)
    url = hub.push_space(folder, "user/demo", "user/clip-hand3d-tiny", wheel=tmp_path / WHEEL)
    assert url == "https://huggingface.co/user/demo/commit/0"
    (create,), (variable,), (upload,) = (
        hub_api.named(name) for name in ("create_repo", "add_space_variable", "upload_folder")
    )
    assert create[1] == ("user/demo",) and create[2]["repo_type"] == "space" and create[2]["space_sdk"] == "gradio"
    assert create[2]["space_variables"] == [{"key": "CLIP_HAND3D_MODEL", "value": "user/clip-hand3d-tiny"}]
    assert variable[1] == ("user/demo", "CLIP_HAND3D_MODEL", "user/clip-hand3d-tiny")
    sent = upload[2]
    assert sent["repo_type"] == "space" and sent["repo_id"] == "user/demo"
    assert sent["files"] == ["README.md", "app.py", "examples/hand.png", "requirements.txt", f"wheels/{WHEEL}"]
    card = SpaceCard(sent["readme"])
    assert card.data.models == ["user/clip-hand3d-tiny"] and card.data.sdk == "gradio" and card.data.title == "Demo"
    assert snapshot(folder) == before  # the local Space is untouched


def test_push_space_checks_the_folder_and_its_wheel(tmp_path, hub_api):
    with pytest.raises(ValueError, match="has no app.py"):
        hub.push_space(tmp_path, "user/demo", "user/tiny")
    folder = space_folder(tmp_path / "space")
    (tmp_path / "other-0.1-py3-none-any.whl").write_bytes(b"wheel")
    with pytest.raises(ValueError, match=f"requirements.txt names ./wheels/{WHEEL}"):
        hub.push_space(folder, "user/demo", "user/tiny", wheel=tmp_path / "other-0.1-py3-none-any.whl")
    assert hub_api.named("upload_folder") == []


def test_push_space_of_the_repos_demo_builds_the_wheel_its_requirements_name(hub_api):
    """spaces_demo/ as it is, with the package's wheel built from this checkout (which stays clean)."""
    before = sorted(path.name for path in REPO.iterdir())
    hub.push_space(REPO / "spaces_demo", "user/demo", "user/clip-hand3d-tiny")
    (upload,) = hub_api.named("upload_folder")
    assert {"app.py", "README.md", "requirements.txt"} <= set(upload[2]["files"])
    assert any(name.startswith("wheels/clip_hand3d-") for name in upload[2]["files"])
    assert not any("__pycache__" in name for name in upload[2]["files"])
    assert sorted(path.name for path in REPO.iterdir()) == before


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
    assert "| PA-MPJPE (mm) | 12.35 |" in card and "F@5 mm / F@15 mm | 0.2 / 0.7 |" in card
    assert 'AutoModel.from_pretrained("user/tiny", trust_remote_code=True' in card
    assert "- Loss weights: pose 1, mesh 0.05, consistency 0.1, CLIP 0.1 (the paper's losses)\n" in card
    assert "- Training data: `synthetic:16`, stage 2, ablation `none`, 4 optimiser steps\n" in card
    assert "```\naccelerate launch train.py --config clip-hand3d-tiny\n```" in card
    assert "$" not in card.split("```bibtex")[0]


def test_the_card_metadata_parses_with_a_model_index_of_each_score(tmp_path, tiny_model, tiny_config):
    tiny_model.save_pretrained(tmp_path)
    scores = {"pa_mpjpe": 12.5, "pa_mpvpe": 13.0, "auc_joints": 0.5, "f5": 0.2, "mean_pose_pa_mpjpe": 30.0}
    run = tiny_run(dataset="synthetic:16+freihand:/data/FreiHAND", eval_dataset="freihand:/data/FreiHAND")
    data = ModelCard.load(hub.write_model_card(tmp_path, run, scores)).data
    assert (data.license, data.library_name, data.pipeline_tag) == ("apache-2.0", "transformers", "keypoint-detection")
    assert "hand-mesh-recovery" in data.tags and data.datasets == ["synthetic", "freihand"]
    expected_base = [tiny_config.backbone] if tiny_config.use_pretrained_backbone else []
    if tiny_config.use_pretrained_text_model:
        expected_base.append(tiny_config.text_model_name_or_path)
    assert data.base_model == (expected_base or None)
    results = {result.metric_type: result for result in data.eval_results}
    assert set(results) == {"pa_mpjpe", "pa_mpvpe", "auc_joints", "f5"}  # the baselines are not the model's scores
    assert results["pa_mpjpe"].metric_value == 12.5 and results["pa_mpjpe"].metric_name == "PA-MPJPE (mm)"
    for result in results.values():
        assert (result.dataset_name, result.dataset_type, result.dataset_split) == (
            "freihand:/data/FreiHAND", "freihand", "evaluation")  # fmt: skip
        assert result.task_type == "keypoint-detection" and data.model_name == "user/tiny"


def test_a_card_without_scores_has_no_model_index(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    data = ModelCard.load(hub.write_model_card(tmp_path, tiny_run(), {})).data
    assert data.eval_results is None and data.license == "apache-2.0"


def test_model_card_without_repo_id_names_the_folder_and_missing_scores_read_na(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "tiny-run")
    card = hub.write_model_card(tmp_path / "tiny-run", tiny_run(repo_id=None), {}).read_text()
    assert "\n# tiny-run\n" in card and "| PA-MPJPE (mm) | n/a |" in card
    assert f'AutoModel.from_pretrained("{tmp_path / "tiny-run"}"' in card


def test_the_token_is_redacted_from_the_command_line():
    argv = ["--config", "tiny", "--hub_token", "hf_secret", "--hub_token=hf_other", "--seed", "1"]
    assert hub.redact_token(argv) == ["--config", "tiny", "--hub_token", "***", "--hub_token=***", "--seed", "1"]


def test_the_template_is_package_data():
    template = hub.model_card_template()
    assert template.startswith("# $model_name\n") and "$pa_mpjpe" in template


def test_model_card_from_a_non_editable_install(tmp_path):
    # The wheel is built from a copy of the sources (nothing is left in the working tree) and installed on its own
    # into a folder that comes first on the path, ahead of the editable install; torch and the rest come from here.
    wheel = hub.build_wheel(tmp_path / "wheels")
    target = tmp_path / "installed"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    subprocess.run([*pip, str(wheel)], check=True, cwd=tmp_path)
    python = sys.executable
    result = subprocess.run(
        [python, "-I", "-c", CARD_FROM_INSTALL, str(tmp_path / "model"), str(target)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    installed_at = Path(result.stdout.strip().splitlines()[-1])
    assert installed_at.is_relative_to(target), f"clip_hand3d came from {installed_at}, not the fresh install"
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| PA-MPJPE (mm) | 12.35 |" in card and "- Variant: `clip-hand3d-tiny`" in card
    assert "- Held-out data: `synthetic:16` (8 samples)" in card
    assert ModelCard(card).data.eval_results[0].metric_value == 12.3456
    assert "$" not in card.split("```bibtex")[0]
