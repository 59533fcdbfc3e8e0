"""train.py end to end on the tiny variant and built-in synthetic hands: outputs, resume, NaN handling."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

import train
from clip_hand3d import CLIPHand3DModel, CLIPHand3DProcessor
from clip_hand3d.modeling.modeling_clip_hand3d import CLIPHand3DOutput

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """train.main runs in this process, and Accelerate keeps the mixed precision of its first Accelerator in a
    process-wide state: reset it so that each test's run gets its own."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def tiny_run_args(output_dir: Path, *extra: str) -> list[str]:
    return [
        "--config", "clip-hand3d-tiny",
        "--dataset", "synthetic:16",
        "--eval_samples", "8",
        "--train_batch_size", "4",
        "--eval_batch_size", "8",
        "--max_steps", "4",
        "--checkpointing_steps", "2",
        "--logging_steps", "1",
        "--lr_scheduler", "constant",
        "--two_views",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def test_training_run_leaves_a_loadable_model_metrics_and_card(tmp_path):
    scores = train.main(tiny_run_args(tmp_path, "--loss_weight_joint_offsets", "0.5"))
    model = CLIPHand3DModel.from_pretrained(tmp_path)
    assert model.config.loss_weight_joint_offsets == 0.5
    processor = CLIPHand3DProcessor.from_pretrained(tmp_path)
    assert processor.image_processor.image_size == model.config.image_size == 128
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_samples"] == 8 and metrics["steps"] == 4
    assert metrics["pa_mpjpe"] == pytest.approx(scores["pa_mpjpe"]) and metrics["pa_mpjpe"] > 0
    assert {"pa_mpvpe", "f5", "f15", "auc_joints", "mean_pose_pa_mpjpe", "mean_shape_pa_mpjpe"} <= set(metrics)
    assert 0 < metrics["mean_shape_pa_mpjpe"] < metrics["mean_pose_pa_mpjpe"]
    curve = json.loads((tmp_path / "training_curve.json").read_text())
    assert [record["step"] for record in curve] == [1, 2, 3, 4]
    logged = {
        "loss_joints",
        "loss_joint_offsets",
        "loss_vertices",
        "loss_clip",
        "loss_consistency_2d",
        "images_per_second",
    }
    assert logged <= set(curve[0])
    card = (tmp_path / "README.md").read_text()
    assert "$" not in card.split("```bibtex")[0]
    assert f"| PA-MPJPE (mm) | {metrics['pa_mpjpe']:.4g} |" in card
    assert "CLIP 0.1, and joint offsets 0.5 (not in the paper)" in card
    for plot in ("pck_curve.png", "logit_matrices.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [path.name for path in sorted(tmp_path.glob("checkpoint-*"))] == ["checkpoint-2", "checkpoint-4"]


@pytest.mark.parametrize("precision", [(), ("--mixed_precision", "bf16", "--channels_last")], ids=["fp32", "bf16"])
def test_resumed_run_reaches_the_weights_of_an_uninterrupted_one(tmp_path, precision):
    train.main(tiny_run_args(tmp_path, *precision))
    uninterrupted = load_file(tmp_path / "model.safetensors")
    # A run killed after its checkpoint at step 2: everything written after it is gone.
    shutil.rmtree(tmp_path / "checkpoint-4")
    (tmp_path / "model.safetensors").unlink()
    train.main(tiny_run_args(tmp_path, *precision, "--resume_from_checkpoint", "latest"))
    resumed = load_file(tmp_path / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)


def test_total_limit_keeps_the_newest_checkpoints(tmp_path):
    train.main(tiny_run_args(tmp_path, "--checkpointing_steps", "1", "--checkpoints_total_limit", "2"))
    assert [path.name for path in sorted(tmp_path.glob("checkpoint-*"))] == ["checkpoint-3", "checkpoint-4"]
    assert not list(tmp_path.glob(".checkpoint-*"))


def _nan_after(calls_before_nan: int | None, monkeypatch) -> None:
    """Make the model's loss NaN from call number `calls_before_nan` on (None: only the first call)."""
    original_forward = CLIPHand3DModel.forward
    calls = {"count": 0}

    def forward(self, *args, **kwargs) -> CLIPHand3DOutput:
        outputs = original_forward(self, *args, **kwargs)
        calls["count"] += 1
        poisoned = calls["count"] == 1 if calls_before_nan is None else calls["count"] > calls_before_nan
        if outputs.loss is not None and poisoned:
            outputs.loss = outputs.loss * float("nan")
        return outputs

    monkeypatch.setattr(CLIPHand3DModel, "forward", forward)


def test_a_nan_loss_skips_the_step(tmp_path, monkeypatch, caplog):
    _nan_after(None, monkeypatch)
    scores = train.main(tiny_run_args(tmp_path))
    assert scores["steps"] == 4
    assert "non-finite loss at step 0: step skipped (1 in a row)" in caplog.text


def test_repeated_nan_losses_stop_the_run(tmp_path, monkeypatch):
    _nan_after(1, monkeypatch)
    with pytest.raises(RuntimeError, match="NaN or infinite for 3 steps in a row"):
        train.main(tiny_run_args(tmp_path, "--max_consecutive_nan_steps", "3"))


def test_batch_larger_than_the_data_fails_at_start(tmp_path):
    with pytest.raises(
        ValueError, match=r"--train_batch_size 32 x 1 processes is larger than the training data \(16 rows"
    ):
        train.main(tiny_run_args(tmp_path, "--train_batch_size", "32"))


def test_two_cpu_processes_train_with_a_global_clip_batch(tmp_path):
    """DDP over two CPU processes (gloo). Accelerate's `--cpu` flag starts a single process, so two CPU processes
    are `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2`. The first step is a stage-1 step,
    which leaves the mesh regressor out of the graph: DDP must be told to expect unused parameters."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train.py"),
        *tiny_run_args(tmp_path, "--train_batch_size", "2", "--max_steps", "2", "--stage1_steps", "1"),
    ]  # fmt: skip
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "batch 2 x 2 processes" in result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_samples"] == 8 and metrics["steps"] == 2
    CLIPHand3DModel.from_pretrained(tmp_path)


def test_stage1_steps_train_the_joints_first_then_the_mesh_and_eval_steps_score_along_the_way(tmp_path):
    scores = train.main(
        tiny_run_args(tmp_path, "--stage1_steps", "2", "--checkpointing_steps", "1", "--eval_steps", "2")
    )
    curve = json.loads((tmp_path / "training_curve.json").read_text())
    train_records = [record for record in curve if "loss_joints" in record]
    assert ["loss_vertices" in record for record in train_records] == [False, False, True, True]
    assert all("loss_clip" in record for record in train_records)
    # --eval_steps scores the held-out split along the way; the last one is the final evaluation.
    eval_records = [record for record in curve if "eval_pa_mpjpe" in record]
    assert [record["step"] for record in eval_records] == [2, 4]
    assert eval_records[-1]["eval_pa_mpjpe"] == pytest.approx(scores["pa_mpjpe"])

    def mesh_weights(step: int) -> dict:
        weights = load_file(tmp_path / f"checkpoint-{step}" / "model.safetensors")
        return {name: value for name, value in weights.items() if name.startswith("mesh_regressor.")}

    # Stage-1 steps leave the mesh regressor as it was initialised; the stage-2 steps train it.
    step1, step2, step3 = mesh_weights(1), mesh_weights(2), mesh_weights(3)
    assert step1 and all(torch.equal(step1[name], step2[name]) for name in step1)
    assert any(not torch.equal(step2[name], step3[name]) for name in step2)


def test_stage2_starts_early_when_only_stage2_minutes_of_the_budget_are_left(tmp_path, monkeypatch, caplog):
    """A machine slower than the plan: the time budget reaches its last --stage2_minutes during stage 1 (here from
    the third check on, faked), so the mesh still trains, from that step to the end."""
    checks = []

    def fake_out_of_time(accelerator, start, max_minutes):
        if max_minutes == 60:  # the whole budget: never spent
            return False
        checks.append(max_minutes)
        return len(checks) >= 3

    monkeypatch.setattr(train, "out_of_time", fake_out_of_time)
    flags = ("--stage1_steps", "100", "--max_train_minutes", "60", "--stage2_minutes", "59.5")
    with caplog.at_level("INFO"):
        scores = train.main(tiny_run_args(tmp_path, *flags))
    assert checks == [0.5, 0.5, 0.5]  # checked before each stage-1 step, not after stage 2 began
    curve = json.loads((tmp_path / "training_curve.json").read_text())
    assert ["loss_vertices" in record for record in curve if "loss_joints" in record] == [False, False, True, True]
    assert scores["stage2_from_step"] == 2 and scores["steps"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["stage2_from_step"] == 2
    assert "stage 2 starts at step 2 of 100 planned for stage 1: 59.5 of the 60.0 minutes are left" in caplog.text
    assert json.loads((tmp_path / "checkpoint-4" / "training_progress.json").read_text())["stage2_from_step"] == 2


def test_a_run_resumed_in_stage2_stays_in_it():
    args = train.parse_args(["--stage1_steps", "100", "--max_train_minutes", "60", "--stage2_minutes", "1"])
    accelerator = train.Accelerator(cpu=True)
    now = train.time.monotonic()
    assert train.training_stage(args, accelerator, {"global_step": 5}, start=now) == 1
    resumed = {"global_step": 5, "stage2_from_step": 3}
    assert train.training_stage(args, accelerator, resumed, start=now) == 2
    fresh = {"global_step": 5}
    assert train.training_stage(args, accelerator, fresh, start=now - 59.5 * 60) == 2
    assert fresh["stage2_from_step"] == 5


def test_stage1_steps_need_a_stage2_run():
    with pytest.raises(ValueError, match="--stage1_steps splits a --stage 2 run"):
        train.main(["--stage", "1", "--stage1_steps", "3"])


def test_a_cpu_process_on_fewer_threads_than_cores_is_warned_about(monkeypatch, caplog):
    accelerator = train.Accelerator(cpu=True)
    monkeypatch.setattr(train.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(train.torch, "get_num_threads", lambda: 4)
    train.warn_about_idle_cpu_cores(accelerator)
    assert "CPU thread" not in caplog.text
    monkeypatch.setattr(train.torch, "get_num_threads", lambda: 1)
    train.warn_about_idle_cpu_cores(accelerator)
    assert "training on 1 CPU thread(s) of 4 cores" in caplog.text
    assert "--num_processes 1" in caplog.text
