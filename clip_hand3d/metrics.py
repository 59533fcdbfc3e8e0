"""Hand pose and mesh metrics, computed exactly as FreiHAND's official evaluation (`eval.py`) computes them.

All inputs are in metres; errors are reported in millimetres, AUCs and F-scores in [0, 1].

The official evaluation, which these functions reproduce number for number:
- Procrustes alignment with scale (`align_w_scale`): centre both point sets, scale both to unit Frobenius
  norm (plus 1e-8), rotate the prediction with `scipy.linalg.orthogonal_procrustes` (reflections allowed),
  then scale and translate it onto the ground truth. Joints and vertices are aligned independently.
- Keypoint statistics (`EvalUtil.get_measures`): per keypoint, the Euclidean errors of all samples; the
  mean error is the mean over keypoints of each keypoint's mean, the median error the mean over keypoints
  of each keypoint's median; PCK at threshold t counts `error <= t`; the AUC is the trapezoid area under
  each keypoint's PCK curve divided by the threshold range, averaged over keypoints. FreiHAND uses 100
  thresholds from 0 to 50 mm.
- F-score (`calculate_fscore`): per sample, nearest-neighbour distances from every ground-truth vertex to
  the predicted vertices and back, counted with a strict `distance < threshold`, at 5 mm and 15 mm,
  averaged over samples; computed on the aligned vertices.
- Unaligned errors (`eval_xyz`, `eval_mesh_err`): the same keypoint statistics on the points as given, with no
  alignment at all; on FreiHAND's camera-frame points these are absolute errors. Here `mpjpe_absolute` and
  `mpvpe_absolute`.

Two additions, both documented in `freihand_scores`: root-relative errors (`mpjpe`, `mpvpe`: each set centred on
its own wrist, which predictions without a root position can be scored by), and the STB/RHD-style AUCs
(`auc_20_50`, `auc_0_30`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# The wrist, index 0 in FreiHAND's joint order (see modeling/hand_joints.py; not imported here so that this
# module depends on numpy and scipy only).
ROOT_JOINT_INDEX = 0

# FreiHAND's PCK thresholds: 100 values from 0 to 50 mm (`get_measures(0.0, 0.05, 100)`), in metres.
FREIHAND_PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)
# STB/RHD convention (Zimmermann and Brox 2017): 20 thresholds from 20 to 50 mm, in metres.
STB_RHD_PCK_THRESHOLDS_M = np.linspace(0.02, 0.05, 20)
# The paper's ablation tables report AUC(0-30 mm); we sample it like the STB/RHD curve, 20 thresholds, in metres.
PCK_0_30_THRESHOLDS_M = np.linspace(0.0, 0.03, 20)
# FreiHAND's F-score thresholds: 5 mm and 15 mm, in metres.
F_SCORE_THRESHOLDS_M = (0.005, 0.015)

_NORM_EPSILON = 1e-8
_METRES_TO_MM = 1000.0


@dataclass(frozen=True)
class PCKMeasures:
    """Statistics of keypoint errors, as FreiHAND's `EvalUtil.get_measures` returns them.

    `mean` and `median` are in the units of the errors; `auc` in [0, 1]; `pck` (T,) is the fraction of
    correct keypoints at each threshold, averaged over keypoints.
    """

    mean: float
    median: float
    auc: float
    pck: np.ndarray


def _as_point_batch(name: str, points) -> np.ndarray:
    """`points` as a float64 array (B, N, 3) with B, N >= 1 and finite values; a clear error otherwise."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (batch, num_points, 3), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: at least one sample is needed")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no points: shape {array.shape}")
    if not np.isfinite(array).all():
        bad_samples = np.unique(np.nonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} contains NaN or infinite values (samples {bad_samples[:10].tolist()})")
    return array


def _check_same_shape(pred_name: str, pred: np.ndarray, gt_name: str, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"{pred_name} has shape {pred.shape} but {gt_name} has shape {gt.shape}; they must match")


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align `pred` onto `gt` with a similarity transform, as FreiHAND's `align_w_scale`.

    Both are centred and divided by their Frobenius norm plus 1e-8, giving `gt0` and `pred0`;
    `R, s = scipy.linalg.orthogonal_procrustes(gt0, pred0)` (reflections allowed: the determinant is not fixed);
    the result is `pred0 @ R.T * s * (|gt - mean(gt)| + 1e-8) + mean(gt)`. Batches are aligned sample by sample
    in one vectorised pass.

    Args:
        pred: predicted points (N, 3) or a batch (B, N, 3), any unit.
        gt: ground-truth points of the same shape and unit.

    Returns:
        The aligned prediction, same shape and unit as `pred`, float64.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim not in (2, 3) or pred.shape[-1] != 3:
        raise ValueError(f"pred must have shape (num_points, 3) or (batch, num_points, 3), got {pred.shape}")
    _check_same_shape("pred", pred, "gt", gt)

    gt_mean = gt.mean(axis=-2, keepdims=True)
    pred_mean = pred.mean(axis=-2, keepdims=True)
    gt_centred = gt - gt_mean
    pred_centred = pred - pred_mean
    gt_norm = np.linalg.norm(gt_centred, axis=(-2, -1), keepdims=True) + _NORM_EPSILON
    pred_norm = np.linalg.norm(pred_centred, axis=(-2, -1), keepdims=True) + _NORM_EPSILON
    gt_centred = gt_centred / gt_norm
    pred_centred = pred_centred / pred_norm

    # scipy's orthogonal_procrustes(A, B): U S V^T = svd(A^T B), R = U V^T, s = sum(S).
    u, singular_values, vt = np.linalg.svd(gt_centred.swapaxes(-1, -2) @ pred_centred)
    rotation = u @ vt
    scale = singular_values.sum(axis=-1)[..., None, None]
    return (pred_centred @ rotation.swapaxes(-1, -2)) * scale * gt_norm + gt_mean


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distances between corresponding points (..., N, 3) -> (..., N), in the points' unit."""
    return np.sqrt(np.sum(np.square(np.asarray(gt) - np.asarray(pred)), axis=-1))


def _check_thresholds(thresholds: np.ndarray) -> None:
    if thresholds.ndim != 1 or thresholds.shape[0] < 2 or not np.all(np.diff(thresholds) > 0):
        raise ValueError(f"thresholds must be a 1D increasing sequence of at least 2 values, got {thresholds}")


def area_under_curve(pck: np.ndarray, thresholds: np.ndarray) -> float:
    """Trapezoid area under a PCK curve (T,) divided by the threshold range: in [0, 1] for a PCK in [0, 1]."""
    pck = np.asarray(pck, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    _check_thresholds(thresholds)
    if pck.shape != thresholds.shape:
        raise ValueError(f"pck has shape {pck.shape} but thresholds has shape {thresholds.shape}; they must match")
    return float(np.trapezoid(pck, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))


def pck_measures(errors: np.ndarray, thresholds: np.ndarray) -> PCKMeasures:
    """Mean and median error, PCK curve and AUC of keypoint errors, as FreiHAND's `EvalUtil.get_measures`.

    Args:
        errors: (num_samples, num_keypoints) Euclidean errors, any unit.
        thresholds: (T,) increasing thresholds in the same unit; a keypoint is correct when `error <= threshold`.

    Returns:
        PCKMeasures: mean and median in the errors' unit (means over keypoints of the per-keypoint mean and
        median over samples), `auc` (mean over keypoints of the per-keypoint normalised area), `pck` (T,).
    """
    errors = np.asarray(errors, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    _check_thresholds(thresholds)
    if errors.ndim != 2 or errors.shape[0] == 0 or errors.shape[1] == 0:
        raise ValueError(f"errors must have shape (num_samples, num_keypoints) with both >= 1, got {errors.shape}")
    # One threshold at a time keeps memory at one (num_samples, num_keypoints) mask, even for 778 vertices.
    pck_per_keypoint = np.stack([np.mean(errors <= threshold, axis=0) for threshold in thresholds], axis=-1)
    auc_per_keypoint = np.trapezoid(pck_per_keypoint, thresholds, axis=-1) / np.trapezoid(
        np.ones_like(thresholds), thresholds
    )
    return PCKMeasures(
        mean=float(np.mean(np.mean(errors, axis=0))),
        median=float(np.mean(np.median(errors, axis=0))),
        auc=float(np.mean(auc_per_keypoint)),
        pck=np.mean(pck_per_keypoint, axis=0),
    )


def f_scores(pred_points: np.ndarray, gt_points: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Per-sample F-scores between point clouds at several thresholds, as FreiHAND's `calculate_fscore`.

    For each sample: recall = fraction of ground-truth points whose nearest predicted point is closer than the
    threshold, precision = fraction of predicted points whose nearest ground-truth point is closer than the
    threshold (strict `<`), F = 2 p r / (p + r), 0 when p + r = 0. (FreiHAND's code swaps the two names;
    F is symmetric, so the numbers are the same.) The nearest-neighbour distances are computed once per sample
    and shared by all thresholds.

    Args:
        pred_points: (B, N, 3) predicted points (need not correspond to the ground truth's), metres.
        gt_points: (B, M, 3) ground-truth points, metres.
        thresholds: T distance thresholds in metres.

    Returns:
        (B, T) F-scores in [0, 1].
    """
    pred_points = _as_point_batch("pred_points", pred_points)
    gt_points = _as_point_batch("gt_points", gt_points)
    if pred_points.shape[0] != gt_points.shape[0]:
        raise ValueError(f"pred_points has {pred_points.shape[0]} samples but gt_points has {gt_points.shape[0]}")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.shape[0] == 0:
        raise ValueError(f"thresholds must be a 1D sequence of at least one distance, got {thresholds}")
    scores = np.zeros((pred_points.shape[0], thresholds.shape[0]))
    for index, (pred, gt) in enumerate(zip(pred_points, gt_points, strict=True)):
        gt_to_pred, _ = cKDTree(pred).query(gt)
        pred_to_gt, _ = cKDTree(gt).query(pred)
        recall = np.mean(gt_to_pred[:, None] < thresholds, axis=0)
        precision = np.mean(pred_to_gt[:, None] < thresholds, axis=0)
        matched = precision + recall > 0
        scores[index, matched] = 2 * precision[matched] * recall[matched] / (precision[matched] + recall[matched])
    return scores


def freihand_scores(
    pred_joints: np.ndarray,
    gt_joints: np.ndarray,
    pred_vertices: np.ndarray | None = None,
    gt_vertices: np.ndarray | None = None,
) -> dict:
    """FreiHAND's scores (aligned and unaligned), plus the root-relative errors and STB/RHD-style AUCs the paper
    reports.

    Args:
        pred_joints, gt_joints: (B, 21, 3) joints in metres, FreiHAND order (joint 0, the wrist, is the root).
        pred_vertices, gt_vertices: optional (B, 778, 3) mesh vertices in metres, in corresponding order;
            give both or neither.

    Returns:
        A dict of floats (and lists for the curves):
        - `pa_mpjpe`, `median_pa_mpjpe` (mm): joint errors after Procrustes alignment (FreiHAND's
          "aligned" keypoint error); `auc_joints`: its PCK AUC over 0-50 mm (100 thresholds).
        - `mpjpe`, `median_mpjpe` (mm): root-relative joint errors, each set centred on its own joint 0
          (no alignment, no scale); `auc_20_50` and `auc_0_30`: the PCK AUC of these errors over 20-50 mm
          and 0-30 mm (20 thresholds each; STB/RHD convention and the paper's ablation tables).
        - `mpjpe_absolute` (mm): FreiHAND's unaligned joint error, the mean over samples and joints of the
          Euclidean distance between the points as given (no root alignment): absolute for camera-frame inputs.
        - `pck_thresholds_mm` (100 values, 0-50 mm), `pck_joints`: the aligned joints' PCK curve.
        With vertices:
        - `pa_mpvpe` (mm), `auc_vertices`, `pck_vertices`: vertex errors after their own Procrustes
          alignment (FreiHAND aligns vertices independently of joints).
        - `mpvpe` (mm): vertex errors with each mesh centred on its own set's joint 0 (prediction on the
          predicted wrist, ground truth on the ground-truth wrist).
        - `mpvpe_absolute` (mm): FreiHAND's unaligned vertex error, as `mpjpe_absolute` on the vertices.
        - `f5`, `f15`: F-scores of the aligned vertices at 5 mm and 15 mm, averaged over samples.

    As in the official code, the 1e-8 added to the norms during alignment leaves an exact copy of the ground
    truth a few nanometres off after alignment, so its aligned PCK at the 0 mm threshold is 0 and its
    `auc_joints` is 1 - 0.5 / 99 = 0.99495, not 1.
    """
    pred_joints = _as_point_batch("pred_joints", pred_joints)
    gt_joints = _as_point_batch("gt_joints", gt_joints)
    _check_same_shape("pred_joints", pred_joints, "gt_joints", gt_joints)

    aligned_joints = procrustes_align(pred_joints, gt_joints)
    aligned_joint_measures = pck_measures(point_errors(aligned_joints, gt_joints), FREIHAND_PCK_THRESHOLDS_M)
    pred_root = pred_joints[:, ROOT_JOINT_INDEX : ROOT_JOINT_INDEX + 1]
    gt_root = gt_joints[:, ROOT_JOINT_INDEX : ROOT_JOINT_INDEX + 1]
    root_relative_errors = point_errors(pred_joints - pred_root, gt_joints - gt_root)
    root_relative_measures = pck_measures(root_relative_errors, STB_RHD_PCK_THRESHOLDS_M)

    scores = {
        "pa_mpjpe": aligned_joint_measures.mean * _METRES_TO_MM,
        "median_pa_mpjpe": aligned_joint_measures.median * _METRES_TO_MM,
        "mpjpe": root_relative_measures.mean * _METRES_TO_MM,
        "median_mpjpe": root_relative_measures.median * _METRES_TO_MM,
        "mpjpe_absolute": float(np.mean(point_errors(pred_joints, gt_joints))) * _METRES_TO_MM,
        "auc_joints": aligned_joint_measures.auc,
        "auc_20_50": root_relative_measures.auc,
        "auc_0_30": pck_measures(root_relative_errors, PCK_0_30_THRESHOLDS_M).auc,
        "pck_thresholds_mm": (FREIHAND_PCK_THRESHOLDS_M * _METRES_TO_MM).tolist(),
        "pck_joints": aligned_joint_measures.pck.tolist(),
    }
    if pred_vertices is None and gt_vertices is None:
        return scores
    if pred_vertices is None or gt_vertices is None:
        missing = "pred_vertices" if pred_vertices is None else "gt_vertices"
        raise ValueError(f"{missing} is missing: give both pred_vertices and gt_vertices, or neither")
    scores.update(_vertex_scores(pred_vertices, gt_vertices, pred_root, gt_root))
    return scores


def _vertex_scores(pred_vertices, gt_vertices, pred_root: np.ndarray, gt_root: np.ndarray) -> dict:
    """The vertex entries of `freihand_scores`; roots (B, 1, 3) are the joints' wrists, metres."""
    pred_vertices = _as_point_batch("pred_vertices", pred_vertices)
    gt_vertices = _as_point_batch("gt_vertices", gt_vertices)
    _check_same_shape("pred_vertices", pred_vertices, "gt_vertices", gt_vertices)
    if pred_vertices.shape[0] != pred_root.shape[0]:
        raise ValueError(
            f"pred_vertices has {pred_vertices.shape[0]} samples but pred_joints has {pred_root.shape[0]}"
        )

    aligned_vertices = procrustes_align(pred_vertices, gt_vertices)
    aligned_measures = pck_measures(point_errors(aligned_vertices, gt_vertices), FREIHAND_PCK_THRESHOLDS_M)
    root_relative_errors = point_errors(pred_vertices - pred_root, gt_vertices - gt_root)
    f_score_5mm, f_score_15mm = np.mean(f_scores(aligned_vertices, gt_vertices, F_SCORE_THRESHOLDS_M), axis=0)
    return {
        "pa_mpvpe": aligned_measures.mean * _METRES_TO_MM,
        "mpvpe": float(np.mean(root_relative_errors)) * _METRES_TO_MM,
        "mpvpe_absolute": float(np.mean(point_errors(pred_vertices, gt_vertices))) * _METRES_TO_MM,
        "auc_vertices": aligned_measures.auc,
        "f5": float(f_score_5mm),
        "f15": float(f_score_15mm),
        "pck_vertices": aligned_measures.pck.tolist(),
    }
