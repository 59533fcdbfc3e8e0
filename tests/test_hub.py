"""Model card filling and the Hub upload call (the Hub itself is replaced by a recorder: no network here)."""

from argparse import Namespace

import pytest

from clip_hand3d import hub


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


def test_model_card_fills_every_field(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    args = Namespace(
        hub_model_id="user/tiny", config="hub_configs/clip-hand3d-tiny", dataset="synthetic:16", eval_dataset=None,
        stage=2, ablation="none",
    )  # fmt: skip
    scores = {"pa_mpjpe": 12.3456, "pa_mpvpe": 13.0, "mpjpe": 20.0, "auc_joints": 0.5, "f5": 0.2, "f15": 0.7,
              "mean_pose_pa_mpjpe": 30.0, "steps": 4, "num_samples": 8}  # fmt: skip
    card = hub.write_model_card(tmp_path, args, scores).read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "| PA-MPJPE (mm) | 12.35 |" in card and "F@5 mm / F@15 mm | 0.2 / 0.7 |" in card
    assert 'AutoModel.from_pretrained("user/tiny", trust_remote_code=True' in card
    assert "- Loss weights: pose 1, mesh 0.05, consistency 0.1, CLIP 0.1 (the paper's losses)\n" in card
    assert "$" not in card.split("```bibtex")[0]


def test_model_card_template_missing_is_named(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    args = Namespace(hub_model_id=None, config="x", dataset="synthetic", eval_dataset=None, stage=2, ablation="none")
    with pytest.raises(FileNotFoundError, match="model card template"):
        hub.write_model_card(tmp_path, args, {}, template=tmp_path / "missing.md")
