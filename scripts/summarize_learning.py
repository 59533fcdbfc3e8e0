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
        "| run | steps | PA-MPJPE (mm) | mean training pose PA-MPJPE (mm) | ratio | PA-MPVPE (mm) | MPJPE (mm) | AUC 0-30 mm | F@15 mm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (metrics, _) in runs.items():
        ratio = metrics["pa_mpjpe"] / metrics["mean_pose_pa_mpjpe"]
        lines.append(
            f"| {RUNS[name]} | {metrics['steps']} | {metrics['pa_mpjpe']:.2f} | {metrics['mean_pose_pa_mpjpe']:.2f} | "
            f"{ratio:.2f} | {metrics['pa_mpvpe']:.2f} | {metrics['mpjpe']:.2f} | {metrics['auc_0_30']:.3f} | "
            f"{metrics['f15']:.3f} |"
        )
    return "\n".join(lines)


def plot_loss_curves(runs: dict[str, tuple[dict, list[dict]]], path: Path) -> None:
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, (_, curve) in runs.items():
        axes.plot([record["step"] for record in curve], [record["loss_joints"] for record in curve], label=RUNS[name])
    axes.set_xlabel("optimiser step")
    axes.set_ylabel("L1 joint loss (uvd units)")
    axes.set_title("Training loss, clip-hand3d-tiny on synthetic hands")
    axes.legend()
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
