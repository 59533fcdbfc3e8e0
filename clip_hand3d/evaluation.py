"""Evaluate a model on a held-out split: predictions in metres, FreiHAND's scores, the mean-pose baseline.

Predictions are turned from uvd into the crop camera's frame with the ground-truth root depth (the protocol of
FreiHAND, RHD and STB, which score root-relative or aligned shapes), then made root-relative.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from clip_hand3d.geometry import UVDSpace
from clip_hand3d.metrics import freihand_scores, procrustes_align
from clip_hand3d.modeling import CLIPHand3DModel


def uvd_batch_to_xyz(uvd: np.ndarray, K_crop: np.ndarray, root_depth: np.ndarray, space: UVDSpace) -> np.ndarray:
    """uvd (B, N, 3) -> crop-camera points (B, N, 3) in metres, given each sample's crop K and root depth (m)."""
    return np.stack(
        [space.uvd_to_xyz(points, K, depth) for points, K, depth in zip(uvd, K_crop, root_depth, strict=True)]
    )


@torch.no_grad()
def predict(model: CLIPHand3DModel, dataloader: DataLoader, accelerator=None) -> dict[str, np.ndarray]:
    """Run `model` over `dataloader` (eval transform) -> root-relative metres: `pred_joints`, `gt_joints`
    (N, 21, 3), `pred_vertices`, `gt_vertices` (N, 778, 3), `vertices_valid` (N,), and `joints_uvd` (N, 21, 3).

    With an `accelerator`, batches of all processes are gathered (duplicates of the last uneven batch dropped).
    """
    model.eval()
    space = UVDSpace.from_config(model.config)
    parts = {
        name: []
        for name in ("pred_joints", "gt_joints", "pred_vertices", "gt_vertices", "vertices_valid", "joints_uvd")
    }
    for batch in dataloader:
        outputs = model(pixel_values=batch["pixel_values"])
        fields = {
            "joints_uvd": outputs.joints_uvd,
            "vertices_uvd": outputs.vertices_uvd,
            "gt_joints_xyz": batch["joints_xyz"],
            "gt_vertices_uvd": batch["vertices_uvd"],
            "K_crop": batch["K_crop"],
            "vertices_valid": batch["vertices_valid"],
        }
        if accelerator is not None:
            fields = accelerator.gather_for_metrics(fields)
        fields = {
            name: value.float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
            for name, value in fields.items()
        }
        root_depth = fields["gt_joints_xyz"][:, 0, 2]
        pred_joints = uvd_batch_to_xyz(fields["joints_uvd"], fields["K_crop"], root_depth, space)
        pred_vertices = uvd_batch_to_xyz(fields["vertices_uvd"], fields["K_crop"], root_depth, space)
        gt_vertices = uvd_batch_to_xyz(fields["gt_vertices_uvd"], fields["K_crop"], root_depth, space)
        gt_joints = fields["gt_joints_xyz"]
        parts["pred_joints"].append(pred_joints - pred_joints[:, :1])
        parts["gt_joints"].append(gt_joints - gt_joints[:, :1])
        parts["pred_vertices"].append(pred_vertices - pred_joints[:, :1])
        parts["gt_vertices"].append(gt_vertices - gt_joints[:, :1])
        parts["vertices_valid"].append(fields["vertices_valid"].astype(bool))
        parts["joints_uvd"].append(fields["joints_uvd"])
    return {name: np.concatenate(values) for name, values in parts.items()}


def score_predictions(predictions: dict[str, np.ndarray]) -> dict:
    """FreiHAND's scores of `predict`'s output; vertex scores over the samples that have a mesh.

    `predict`'s points are root-relative, so their unaligned errors (`mpjpe_absolute`, `mpvpe_absolute`) equal the
    root-relative ones: what FreiHAND's script reports for `write_freihand_predictions`' file, whose predictions
    sit at the ground-truth roots. `format_scores` therefore prints the root-relative rows only.
    """
    valid = predictions["vertices_valid"]
    scores = freihand_scores(predictions["pred_joints"], predictions["gt_joints"])
    if valid.any():
        with_mesh = freihand_scores(
            predictions["pred_joints"][valid],
            predictions["gt_joints"][valid],
            predictions["pred_vertices"][valid],
            predictions["gt_vertices"][valid],
        )
        scores.update({name: value for name, value in with_mesh.items() if name not in scores})
    scores["num_samples"] = int(len(predictions["gt_joints"]))
    return scores


def fixed_pose_pa_mpjpe(pose: np.ndarray, gt_joints: np.ndarray) -> float:
    """PA-MPJPE (mm) of predicting one `pose` (J, 3) for every sample of `gt_joints` (N, J, 3), both in metres."""
    gt_joints = np.asarray(gt_joints, dtype=np.float64)
    predictions = np.broadcast_to(np.asarray(pose, dtype=np.float64), gt_joints.shape)
    return float(np.linalg.norm(procrustes_align(predictions, gt_joints) - gt_joints, axis=-1).mean() * 1000.0)


def mean_pose_pa_mpjpe(train_joints: np.ndarray, gt_joints: np.ndarray) -> float:
    """PA-MPJPE (mm) of predicting the mean root-relative training pose for every held-out sample: the error a
    model that ignores the image would make, aligned exactly like the model's predictions."""
    return fixed_pose_pa_mpjpe((train_joints - train_joints[:, :1]).mean(axis=0), gt_joints)


def aligned_mean_shape(train_joints: np.ndarray, iterations: int = 3) -> np.ndarray:
    """The mean shape of the training hands (J, 3), unit Frobenius norm about its centroid: generalised Procrustes
    analysis, each root-relative pose aligned to the running mean shape (similarity transform, as
    `procrustes_align`) and the aligned poses averaged, `iterations` times from the first pose."""
    poses = np.asarray(train_joints, dtype=np.float64)
    poses = poses - poses[:, :1]
    shape = poses[0]
    for _ in range(iterations):
        shape = procrustes_align(poses, np.broadcast_to(shape, poses.shape)).mean(axis=0)
        shape = shape - shape.mean(axis=0)
        shape = shape / np.linalg.norm(shape)
    return shape


def mean_shape_pa_mpjpe(train_joints: np.ndarray, gt_joints: np.ndarray) -> float:
    """PA-MPJPE (mm) of predicting the training hands' `aligned_mean_shape` for every held-out sample.

    The plain mean pose (`mean_pose_pa_mpjpe`) averages hands seen from every direction, which on data with random
    global rotations is nearly a point, and its score then swings with the training set; this mean is taken after
    aligning the hands to one another, a hand-shaped image-blind prediction whose score is steady.
    """
    return fixed_pose_pa_mpjpe(aligned_mean_shape(train_joints), gt_joints)


TABLE_FIELDS = (
    ("pa_mpjpe", "PA-MPJPE (mm)"),
    ("median_pa_mpjpe", "median PA-MPJPE (mm)"),
    ("pa_mpvpe", "PA-MPVPE (mm)"),
    ("mpjpe", "MPJPE, root-relative (mm)"),
    ("mpvpe", "MPVPE, root-relative (mm)"),
    ("auc_joints", "AUC 0-50 mm, aligned joints"),
    ("auc_vertices", "AUC 0-50 mm, aligned vertices"),
    ("auc_0_30", "AUC 0-30 mm, root-relative joints"),
    ("auc_20_50", "AUC 20-50 mm, root-relative joints"),
    ("f5", "F@5 mm"),
    ("f15", "F@15 mm"),
    ("num_samples", "samples"),
)


def format_scores(scores: dict) -> str:
    """A two-column text table of the scores present in `scores`."""
    rows = [(label, scores[name]) for name, label in TABLE_FIELDS if name in scores]
    width = max(len(label) for label, _ in rows)
    return "\n".join(
        f"{label:<{width}}  {value:.4g}" if isinstance(value, float) else f"{label:<{width}}  {value}"
        for label, value in rows
    )


def write_freihand_predictions(path: str | Path, predictions: dict[str, np.ndarray], roots: np.ndarray) -> None:
    """FreiHAND's submission format: a JSON list [xyz, verts] of per-sample 21 x 3 and 778 x 3 lists in metres.

    The root-relative predictions are placed at `roots` (N, 3), the ground-truth root positions in the camera
    frame, so that the file also scores correctly with the official code's unaligned metrics.
    """
    joints = predictions["pred_joints"] + roots[:, None]
    vertices = predictions["pred_vertices"] + roots[:, None]
    Path(path).write_text(json.dumps([joints.tolist(), vertices.tolist()]))
