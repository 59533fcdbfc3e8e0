"""Summarise scripts/learning_experiment.sh: a markdown table, the loss curves and the PCK curves of the runs.

    python scripts/summarize_learning.py OUTPUT_ROOT DOCS_DIR

Reads OUTPUT_ROOT/{none,no_clip,no_feature_projection,no_sparse_to_dense}/{metrics.json,training_curve.json};
writes DOCS_DIR/learning_table.md, DOCS_DIR/learning_curves.png and DOCS_DIR/learning_pck.png (docs/learning.md
holds the discussion).
"""

import json
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clip_hand3d.plots import plot_pck_curves

RUNS = {
    "none": "full model",
    "no_clip": "w/o CLIP loss",
    "no_feature_projection": "w/o feature projection",
    "no_sparse_to_dense": "w/o sparse-to-dense",
}


def read_runs(root: Path) -> dict[str, tuple[dict, list[dict]]]:
    runs = {}
    for name in RUNS:
        folder = root / name
        if (folder / "metrics.json").is_file():
            runs[name] = (
                json.loads((folder / "metrics.json").read_text()),
                json.loads((folder / "training_curve.json").read_text()),
            )
    return runs


def markdown_table(runs: dict[str, tuple[dict, list[dict]]]) -> str:
    lines = [
        "| run | steps | PA-MPJPE (mm) | mean training pose PA-MPJPE (mm) | ratio | aligned mean shape PA-MPJPE (mm) "
        "| PA-MPVPE (mm) | MPJPE (mm) | AUC 0-30 mm | F@15 mm |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (metrics, _) in runs.items():
        ratio = metrics["pa_mpjpe"] / metrics["mean_pose_pa_mpjpe"]
        lines.append(
            f"| {RUNS[name]} | {metrics['steps']} | {metrics['pa_mpjpe']:.2f} | {metrics['mean_pose_pa_mpjpe']:.2f} | "
            f"{ratio:.2f} | {metrics['mean_shape_pa_mpjpe']:.2f} | {metrics['pa_mpvpe']:.2f} | "
            f"{metrics['mpjpe']:.2f} | {metrics['auc_0_30']:.3f} | {metrics['f15']:.3f} |"
        )
    return "\n".join(lines)


def plot_loss_curves(runs: dict[str, tuple[dict, list[dict]]], path: Path) -> None:
    """Training L1 joint loss and, where the runs logged it (--eval_steps), held-out PA-MPJPE against steps."""
    figure = Figure(figsize=(11, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, eval_axes = figure.subplots(1, 2)
    for name, (metrics, curve) in runs.items():
        train_records = [record for record in curve if "loss_joints" in record]
        eval_records = [record for record in curve if "eval_pa_mpjpe" in record]
        loss_axes.plot(
            [record["step"] for record in train_records],
            [record["loss_joints"] for record in train_records],
            label=RUNS[name],
        )
        eval_axes.plot(
            [record["step"] for record in eval_records] + [metrics["steps"]],
            [record["eval_pa_mpjpe"] for record in eval_records] + [metrics["pa_mpjpe"]],
            marker="o",
            label=RUNS[name],
        )
    baseline = next(iter(runs.values()))[0]["mean_pose_pa_mpjpe"] if runs else None
    if baseline is not None:
        eval_axes.axhline(baseline, color="grey", linestyle="--", label="mean training pose")
        eval_axes.axhline(0.6 * baseline, color="grey", linestyle=":", label="goal: 0.6 x mean pose")
        shape_baseline = next(iter(runs.values()))[0]["mean_shape_pa_mpjpe"]
        eval_axes.axhline(shape_baseline, color="black", linestyle="-.", label="aligned mean training shape")
    loss_axes.set_xlabel("optimiser step")
    loss_axes.set_ylabel("L1 joint loss (uvd units)")
    loss_axes.set_title("Training loss")
    eval_axes.set_xlabel("optimiser step")
    eval_axes.set_ylabel("PA-MPJPE (mm)")
    eval_axes.set_title("500 held-out synthetic hands")
    for axes in (loss_axes, eval_axes):
        axes.legend(fontsize=8)
    figure.suptitle("clip-hand3d-tiny on synthetic hands, 15 minutes on 2 CPU cores")
    figure.tight_layout()
    figure.savefig(path)


def main(root: str, docs: str) -> None:
    runs = read_runs(Path(root))
    docs_dir = Path(docs)
    plot_loss_curves(runs, docs_dir / "learning_curves.png")
    plot_pck_curves(
        {RUNS[name]: (metrics["pck_thresholds_mm"], metrics["pck_joints"]) for name, (metrics, _) in runs.items()},
        docs_dir / "learning_pck.png",
        title="3D PCK, 500 held-out synthetic hands (aligned)",
    )
    table = markdown_table(runs)
    (docs_dir / "learning_table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main(*sys.argv[1:3])
