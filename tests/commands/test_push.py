"""`clip-hand3d push`, `clip-hand3d push-space` and `train.py --push_to_hub`, with the Hub replaced by a recorder."""

import sys

import pytest
from accelerate.state import AcceleratorState

import train
from clip_hand3d import hub
from clip_hand3d.commands import main
from tests.test_hub import WHEEL, record_hub, snapshot, space_folder, trained_folder
from tests.training.test_train import tiny_run_args


@pytest.fixture()
def hub_api(monkeypatch):
    return record_hub(monkeypatch)


def test_push_command_sends_the_folder_to_the_branch(tmp_path, tiny_model, hub_api, capsys):
    folder = trained_folder(tmp_path / "run", tiny_model)
    main(["push", "--model", str(folder), "--repo-id", "user/tiny", "--private", "--revision", "v1", "--token", "t"])
    (create,), (upload,) = hub_api.named("create_repo"), hub_api.named("upload_folder")
    assert create[2]["private"] is True and create[2]["token"] == "t"
    assert upload[2]["revision"] == "v1" and "README.md" in upload[2]["files"]
    assert not any(name.startswith("checkpoint-") for name in upload[2]["files"])
    assert "pushed" in capsys.readouterr().out


def test_push_command_errors_are_one_clear_line(tmp_path, tiny_model, hub_api, monkeypatch):
    with pytest.raises(SystemExit, match="clip-hand3d push: error: model folder .* does not exist"):
        main(["push", "--model", str(tmp_path / "missing"), "--repo-id", "user/tiny"])
    folder = trained_folder(tmp_path / "run", tiny_model)
    before = snapshot(folder)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="clip-hand3d push: error: no Hugging Face token"):
        main(["push", "--model", str(folder), "--repo-id", "user/tiny"])
    assert snapshot(folder) == before and hub_api.calls == []


def test_push_space_command(tmp_path, hub_api, capsys):
    folder = space_folder(tmp_path / "space")
    (tmp_path / WHEEL).write_bytes(b"wheel")
    args = [
        "--space-id",
        "user/demo",
        "--model-id",
        "user/tiny",
        "--folder",
        str(folder),
        "--wheel",
        str(tmp_path / WHEEL),
    ]
    main(["push-space", *args])
    (upload,) = hub_api.named("upload_folder")
    assert upload[2]["repo_type"] == "space" and f"wheels/{WHEEL}" in upload[2]["files"]
    assert "user/tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="clip-hand3d push-space: error: the Space folder .* has no app.py"):
        main(["push-space", "--space-id", "user/demo", "--model-id", "user/tiny", "--folder", str(tmp_path)])


def test_train_push_to_hub_uploads_the_run_without_checkpoints(tmp_path, hub_api, monkeypatch):
    argv = tiny_run_args(tmp_path, "--push_to_hub", "--hub_model_id", "user/tiny-run", "--hub_token", "hf_secret")
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    try:
        train.main(argv)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    (upload,) = hub_api.named("upload_folder")
    assert upload[2]["repo_id"] == "user/tiny-run" and upload[2]["folder_path"] == str(tmp_path)
    assert {"README.md", "model.safetensors", "metrics.json", "pck_curve.png"} <= set(upload[2]["files"])
    assert not any(name.startswith("checkpoint-") for name in upload[2]["files"])
    assert (tmp_path / "checkpoint-4").is_dir()  # kept locally
    assert 'AutoModel.from_pretrained("user/tiny-run"' in upload[2]["readme"]
    assert upload[2]["token"] == "hf_secret" and "hf_secret" not in upload[2]["readme"]  # the card shows "***"
    assert "--hub_token '***'" in upload[2]["readme"]


def test_train_push_to_hub_without_a_token_stops_before_training(tmp_path, hub_api, monkeypatch):
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(hub.HubError, match="no Hugging Face token"):
        train.main(tiny_run_args(tmp_path / "run", "--push_to_hub", "--hub_model_id", "user/tiny-run"))
    assert not (tmp_path / "run").exists()
