"""The few-label experiment of docs/pretraining.md: does contrastive pre-training on unlabeled hands help
CLIP-Hand3D when only a few labelled hands are available?

1. Mining: `clip-hand3d mine-pairs` on the unlabeled pool, once with the labels' 2D joints (`column:joints_uv`, a
   stand-in for a perfect estimator) and once with MediaPipe Hands (a real estimator, no labels).
2. Pre-training (`pretrain.py`, same steps and batch for all): SimCLR, PeCLR, HandCLR on each set of pairs. The
   pre-training never reads a label.
3. Fine-tuning (`train.py --init_from`, same fixed budget for all) on `synthetic:N` labelled hands for every N of
   `--labels` and every seed of `--seeds`, from each encoder and from scratch; held-out PA-MPJPE (mm) of each.
4. Diagnostics: the mining quality (the true 2D pose distance of mined pairs against random pairs, the share of
   same-group pairs) and a pose-retrieval probe of each encoder's features on held-out hands.

Every step skips what its output folder already holds, so the script resumes. Jobs run `--workers` at a time, each
on cores / workers threads. Writes OUT/results.json and prints the tables as markdown.

    python benchmarks/handclr_few_labels.py --out outputs/few-labels
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from clip_hand3d.data.synthetic import load_synthetic
from clip_hand3d.data.unlabeled import UnlabeledHands, crop_processor, crop_transform, normalize_keypoints
from clip_hand3d.geometry import apply_affine
from clip_hand3d.modeling import CLIPHand3DConfig
from clip_hand3d.training.mining import load_mined_pairs
from clip_hand3d.training.pretraining import HandEncoder, load_encoder_backbone, pose_retrieval_ratio
from clip_hand3d.training.pretraining_data import encode_pool, load_pool

REPO = Path(__file__).resolve().parents[1]
PRETRAININGS = {  # name -> (folder, recipe, pairs from the mining of this estimator or None)
    "simclr": ("simclr", "simclr_tiny_cpu", None),
    "peclr": ("peclr", "peclr_tiny_cpu", None),
    "handclr (labels' 2D joints)": ("handclr-labels", "handclr_tiny_cpu", "column"),
    "handclr (MediaPipe)": ("handclr-mediapipe", "handclr_tiny_cpu", "mediapipe"),
}
ESTIMATORS = {"column": "column:joints_uv", "mediapipe": "mediapipe"}


@dataclass
class Job:
    name: str
    command: list[str]
    output: Path  # the job is done when this file exists
    log: Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/few-labels"))
    parser.add_argument("--frames", type=int, default=8, help="frames per unlabeled synthetic sequence")
    parser.add_argument("--sequences", type=int, default=1000, help="unlabeled synthetic sequences (the pool)")
    parser.add_argument("--image-size", type=int, default=128, help="pool images and pre-training crops (px)")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--pretrain-batch-size", type=int, default=32)
    parser.add_argument("--labels", type=int, nargs="+", default=[500, 2000], help="labelled hands to fine-tune on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--finetune-stage1-steps", type=int, default=540)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--probe-samples", type=int, default=500, help="held-out hands of the retrieval probe")
    parser.add_argument("--workers", type=int, default=2, help="jobs at a time")
    return parser.parse_args(argv)


def pool_spec(args) -> str:
    return f"synthetic-video:{args.sequences}x{args.frames}"


def run_jobs(jobs: list[Job], workers: int) -> None:
    """Runs the jobs whose output is missing, `workers` at a time; raises naming the log of a failed one."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}

    def run(job: Job) -> None:
        if job.output.exists():
            return
        job.log.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {job.name} (log {job.log})", flush=True)
        with open(job.log, "w") as log:
            code = subprocess.run(job.command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
        if code.returncode != 0:
            raise RuntimeError(f"{job.name} failed with exit code {code.returncode}: see {job.log}")

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()


def mining_jobs(args) -> list[Job]:
    jobs = []
    for name, keypoints in ESTIMATORS.items():
        out = args.out / f"pairs-{name}"
        command = ["clip-hand3d", "mine-pairs", "--dataset", pool_spec(args), "--keypoints", keypoints]
        command += ["--image-size", str(args.image_size), "--out", str(out), "--no-progress"]
        jobs.append(Job(f"mining ({name})", command, out / "summary.json", args.out / "logs" / f"mine-{name}.log"))
    return jobs


def pretrain_dir(args, name: str) -> Path:
    return args.out / "pretrain" / (PRETRAININGS[name][0] if name in PRETRAININGS else name)


def pretraining_jobs(args) -> list[Job]:
    jobs = []
    for name, (_, recipe, estimator) in PRETRAININGS.items():
        out = pretrain_dir(args, name)
        command = [sys.executable, "pretrain.py", "--recipe", f"recipes/{recipe}.json", "--dataset", pool_spec(args)]
        command += ["--image_size", str(args.image_size), "--max_steps", str(args.pretrain_steps)]
        command += ["--max_train_minutes", "600", "--train_batch_size", str(args.pretrain_batch_size)]
        command += ["--output_dir", str(out), "--checkpointing_steps", "100", "--preprocessing_num_workers", "1"]
        command += ["--dataloader_num_workers", "0"]
        command += ["--pairs", str(args.out / f"pairs-{estimator}" / "pairs")] if estimator else []
        jobs.append(Job(f"pre-training {name}", command, out / "encoder" / "encoder_config.json", out / "log.txt"))
    return jobs


def finetune_dir(args, init: str, labels: int, seed: int) -> Path:
    return args.out / "finetune" / f"{pretrain_dir(args, init).name}-{labels}-seed{seed}"


def finetune_jobs(args, inits: list[str]) -> list[Job]:
    jobs = []
    for init in inits:
        for labels in args.labels:
            for seed in args.seeds:
                out = finetune_dir(args, init, labels, seed)
                command = [sys.executable, "train.py", "--config", "clip-hand3d-tiny", "--dataset"]
                command += [f"synthetic:{labels}", "--eval_samples", str(args.eval_samples), "--seed", str(seed)]
                command += ["--max_steps", str(args.finetune_steps), "--stage1_steps", str(args.finetune_stage1_steps)]
                command += ["--max_train_minutes", "600", "--train_batch_size", "16", "--mixed_precision", "no"]
                command += ["--eval_steps", str(10 * args.finetune_steps), "--preprocessing_num_workers", "1"]
                command += ["--checkpointing_steps", str(10 * args.finetune_steps), "--output_dir", str(out)]
                command += [] if init == "scratch" else ["--init_from", str(pretrain_dir(args, init) / "encoder")]
                name = f"fine-tuning {init} on {labels} labels, seed {seed}"
                jobs.append(Job(name, command, out / "metrics.json", out.with_suffix(".log")))
    return jobs


def sequence_groups(args, rows: np.ndarray) -> np.ndarray:
    """The group (sequence) of rows of the pool: `synthetic-video:NxF` lists the F frames of each sequence in turn."""
    return rows // args.frames


def mining_quality(args) -> dict:
    """Per estimator: the true 2D pose distance (mean over joints, in crop sides, from the labels) of each row and
    its top-1 mined neighbour against a random other row, the share of neighbours in the row's own group, and the
    estimator's summary (rows without a hand, seconds per image)."""
    truth_table = load_mined_pairs(args.out / "pairs-column")
    truth = np.zeros((len(truth_table), 21, 2), np.float32)
    truth[np.asarray(truth_table["index"])] = np.asarray(truth_table["keypoints_2d"], np.float32)
    rng = np.random.default_rng(0)
    quality = {}
    for name in ESTIMATORS:
        pairs = load_mined_pairs(args.out / f"pairs-{name}")
        rows = np.asarray(pairs["index"])
        neighbors = np.asarray(pairs["neighbors"])
        others = (rows + rng.integers(1, len(truth), len(rows))) % len(truth)
        mined = np.linalg.norm(truth[rows] - truth[neighbors[:, 0]], axis=-1).mean(-1)
        random = np.linalg.norm(truth[rows] - truth[others], axis=-1).mean(-1)
        same_group = sequence_groups(args, neighbors) == sequence_groups(args, rows)[:, None]
        summary = json.loads((args.out / f"pairs-{name}" / "summary.json").read_text())
        quality[name] = {
            "rows": int(summary["num_rows"]),
            "rows_without_hand": int(summary.get("num_no_hand", 0)),
            "pairs": len(rows),
            "mined_pose_distance": float(mined.mean()),
            "random_pose_distance": float(random.mean()),
            "same_group_share": float(same_group.mean()),
            "seconds_per_image": float(summary["seconds_per_image"]),
        }
    return quality


def retrieval_probe(args) -> dict:
    """`pose_retrieval_ratio` of each encoder's pooled features on held-out synthetic hands (the test split's
    first `--probe-samples`), against the labels' 2D joints; random init for reference. Lower is better."""
    rows = load_synthetic(args.probe_samples, image_size=args.image_size, split="test", num_proc=1)
    pool = UnlabeledHands(rows, name="held-out synthetic hands", columns=["joints_uv"])
    processor = crop_processor(args.image_size)
    keypoints = []
    for index in range(len(pool)):
        row = pool.row(index)
        crop_points = apply_affine(np.asarray(row.columns["joints_uv"], np.float64), crop_transform(row, processor))
        keypoints.append(normalize_keypoints(crop_points, args.image_size))
    keypoints = torch.from_numpy(np.stack(keypoints)).float()
    config = CLIPHand3DConfig.from_pretrained(str(REPO / "hub_configs" / "clip-hand3d-tiny"))
    results = {}
    for name in ["random init", *PRETRAININGS]:
        torch.manual_seed(0)
        encoder = HandEncoder(config)
        if name != "random init":
            load_encoder_backbone(encoder.backbone, pretrain_dir(args, name) / "encoder")
        results[name] = pose_retrieval_ratio(encode_pool(encoder, pool, processor), keypoints)
    return results


def log_minutes(path: Path) -> float | None:
    """Minutes from the first to the last timestamped line of a job's log (the run, not the start-up)."""
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ", path.read_text(errors="replace"), re.MULTILINE)
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds() / 60


def pretraining_results(args) -> dict:
    """Per pre-training: its steps, final loss and positive-retrieval accuracy in the batch, pairs/s, minutes."""
    results = {}
    for name in PRETRAININGS:
        folder = pretrain_dir(args, name)
        curve = json.loads((folder / "training_curve.json").read_text())
        results[name] = {
            "steps": curve[-1]["step"],
            "final_loss": curve[-1]["loss"],
            "final_accuracy": float(np.mean([record["accuracy"] for record in curve[-5:]])),
            "pairs_per_second": float(np.median([record["pairs_per_second"] for record in curve])),
            "minutes": log_minutes(folder / "log.txt"),
        }
    return results


def finetune_results(args, inits: list[str]) -> dict:
    results = {}
    for init in inits:
        for labels in args.labels:
            per_seed = {}
            for seed in args.seeds:
                metrics = json.loads((finetune_dir(args, init, labels, seed) / "metrics.json").read_text())
                per_seed[seed] = {key: metrics[key] for key in ("pa_mpjpe", "pa_mpvpe", "mean_shape_pa_mpjpe")}
                per_seed[seed]["minutes"] = log_minutes(finetune_dir(args, init, labels, seed).with_suffix(".log"))
            results[f"{init} / {labels}"] = per_seed
    return results


def markdown(args, results: dict) -> str:
    lines = [
        "| initialisation | " + " | ".join(f"{n} labels: PA-MPJPE (seeds {args.seeds})" for n in args.labels) + " |"
    ]
    lines.append("|---" * (1 + len(args.labels)) + "|")
    for init in ["scratch", *PRETRAININGS]:
        cells = []
        for labels in args.labels:
            values = [results["finetune"][f"{init} / {labels}"][seed]["pa_mpjpe"] for seed in args.seeds]
            cells.append(f"{np.mean(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    lines += ["", "| mining | rows with a hand | mined pair distance | random pair distance | same group |"]
    lines.append("|---|---|---|---|---|")
    for name, quality in results["mining"].items():
        lines.append(
            f"| {ESTIMATORS[name]} | {quality['pairs']} / {quality['rows']} | {quality['mined_pose_distance']:.3f} | "
            f"{quality['random_pose_distance']:.3f} | {quality['same_group_share']:.3f} |"
        )
    lines += ["", "| pre-training | steps | final loss | positive found in batch | pairs/s | minutes |"]
    lines.append("|---|---|---|---|---|---|")
    for name, run in results["pretraining"].items():
        lines.append(
            f"| {name} | {run['steps']} | {run['final_loss']:.3f} | {run['final_accuracy']:.2f} | "
            f"{run['pairs_per_second']:.1f} | {run['minutes']:.1f} |"
        )
    lines += ["", "| encoder | retrieved pair distance | random pair distance | ratio |", "|---|---|---|---|"]
    for name, probe in results["retrieval"].items():
        lines.append(f"| {name} | {probe['retrieved']:.3f} | {probe['random']:.3f} | {probe['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out = args.out.resolve()
    inits = ["scratch", *PRETRAININGS]
    run_jobs(mining_jobs(args), args.workers)
    # Rendered into the datasets cache once, here, rather than by every pre-training job at the same time.
    load_pool(pool_spec(args), args.image_size, num_proc=os.cpu_count())
    scratch = finetune_jobs(args, ["scratch"])
    run_jobs(pretraining_jobs(args) + scratch, args.workers)
    run_jobs(finetune_jobs(args, list(PRETRAININGS)), args.workers)
    results = {
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "mining": mining_quality(args),
        "pretraining": pretraining_results(args),
        "retrieval": retrieval_probe(args),
        "finetune": finetune_results(args, inits),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(markdown(args, results))


if __name__ == "__main__":
    main()
