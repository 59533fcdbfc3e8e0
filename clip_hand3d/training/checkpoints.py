"""Training checkpoints: `checkpoint-{step}` folders written atomically, a total limit, and `latest` lookup.

A checkpoint is first written to a hidden temporary folder and renamed into place only when complete, so a run
killed while saving leaves the previous checkpoints intact and never a half-written one.
"""

import json
import re
import shutil
from pathlib import Path

from accelerate import Accelerator
from accelerate.logging import get_logger

logger = get_logger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
PROGRESS_FILE = "training_progress.json"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete checkpoints in `output_dir`, oldest (lowest step) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        (int(match.group(1)), path) for path in output_dir.iterdir() if (match := CHECKPOINT_PATTERN.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(output_dir: str | Path, resume_from: str) -> Path | None:
    """`latest` -> the newest checkpoint in `output_dir` (None when there is none); a path -> that path.

    Raises FileNotFoundError naming the path when an explicit checkpoint does not exist.
    """
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from)
    if not (path / PROGRESS_FILE).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {resume_from}: not a checkpoint folder (no {PROGRESS_FILE})"
        )
    return path


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | Path, progress: dict, total_limit: int | None = None
) -> Path:
    """Save model, optimiser, scheduler and random states plus `progress` (at least `global_step`) as
    `output_dir/checkpoint-{global_step}`, atomically; then keep only the newest `total_limit` checkpoints."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{progress['global_step']}"
    temporary = output_dir / f".{final.name}.incomplete"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    if accelerator.is_main_process:
        (temporary / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> dict:
    """Restore the states saved by `save_checkpoint`; returns the saved progress."""
    accelerator.load_state(str(checkpoint))
    return json.loads((checkpoint / PROGRESS_FILE).read_text())


def resume_progress(accelerator: Accelerator, output_dir: str | Path, resume_from: str | None) -> dict:
    """The run's progress {global_step, epoch, batches_in_epoch}: a fresh run's, or the state of the checkpoint
    `resume_from` names (`latest` or a folder, see `resolve_checkpoint`), loaded into `accelerator`'s objects."""
    progress = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0}
    if resume_from:
        checkpoint = resolve_checkpoint(output_dir, resume_from)
        if checkpoint is None:
            logger.info(f"no checkpoint in {output_dir}: starting a new run")
        else:
            progress = load_checkpoint(accelerator, checkpoint)
            logger.info(f"resumed from {checkpoint} at step {progress['global_step']}")
    return progress
