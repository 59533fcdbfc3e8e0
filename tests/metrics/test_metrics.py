"""Tests of clip_hand3d.metrics: hand-computed cases, invariances, and a slow step-by-step reference."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from clip_hand3d.metrics import (
    F_SCORE_THRESHOLDS_M,
    FREIHAND_PCK_THRESHOLDS_M,
    STB_RHD_PCK_THRESHOLDS_M,
    area_under_curve,
    f_scores,
    freihand_scores,
    pck_measures,
    point_errors,
    procrustes_align,
)


def random_hands(rng: np.random.Generator, batch_size: int, num_vertices: int = 300):
    """Ground-truth joints and vertices of about a hand's size (metres), and predictions a few mm off."""
    gt_joints = rng.normal(scale=0.04, size=(batch_size, 21, 3))
    gt_vertices = rng.normal(scale=0.04, size=(batch_size, num_vertices, 3))
    pred_joints = gt_joints + rng.normal(scale=0.008, size=gt_joints.shape) + rng.normal(size=(batch_size, 1, 3))
    pred_vertices = gt_vertices + rng.normal(scale=0.004, size=gt_vertices.shape)
    return pred_joints, gt_joints, pred_vertices, gt_vertices


def similarity_transform(points: np.ndarray, scale: float, mirror: bool = False) -> np.ndarray:
    """Rotate (and optionally mirror), scale and translate points (..., N, 3)."""
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    if mirror:
        rotation = rotation @ np.diag([-1.0, 1.0, 1.0])
    return scale * points @ rotation.T + np.array([0.1, -0.2, 0.5])


# --- A slow reference, one sample at a time, following FreiHAND's eval.py step by step. ---


def reference_align_w_scale(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    gt_mean, pred_mean = gt.mean(0), pred.mean(0)
    gt_centred, pred_centred = gt - gt_mean, pred - pred_mean
    gt_norm = np.linalg.norm(gt_centred) + 1e-8
    gt_centred /= gt_norm
    pred_norm = np.linalg.norm(pred_centred) + 1e-8
    pred_centred /= pred_norm
    rotation, scale = orthogonal_procrustes(gt_centred, pred_centred)
    pred_centred = np.dot(pred_centred, rotation.T) * scale
    return pred_centred * gt_norm + gt_mean


class ReferenceEvalUtil:
    """Per-keypoint lists of errors, like FreiHAND's EvalUtil with every keypoint visible."""

    def __init__(self, num_keypoints: int):
        self.data = [[] for _ in range(num_keypoints)]

    def feed(self, gt: np.ndarray, pred: np.ndarray) -> None:
        distances = np.sqrt(np.sum(np.square(gt - pred), axis=1))
        for keypoint, distance in enumerate(distances):
            self.data[keypoint].append(distance)

    def get_measures(self, low: float, high: float, steps: int):
        thresholds = np.linspace(low, high, steps)
        norm_factor = np.trapezoid(np.ones_like(thresholds), thresholds)
        means, medians, aucs, curves = [], [], [], []
        for keypoint_errors in self.data:
            keypoint_errors = np.array(keypoint_errors)
            means.append(np.mean(keypoint_errors))
            medians.append(np.median(keypoint_errors))
            curve = np.array([np.mean((keypoint_errors <= t).astype("float")) for t in thresholds])
            curves.append(curve)
            aucs.append(np.trapezoid(curve, thresholds) / norm_factor)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(np.array(curves), 0)


def reference_fscore(gt: np.ndarray, pred: np.ndarray, threshold: float) -> float:
    pairwise = np.linalg.norm(gt[:, None, :] - pred[None, :, :], axis=-1)
    gt_to_pred, pred_to_gt = pairwise.min(axis=1), pairwise.min(axis=0)
    recall = float(sum(d < threshold for d in pred_to_gt)) / len(pred_to_gt)
    precision = float(sum(d < threshold for d in gt_to_pred)) / len(gt_to_pred)
    if recall + precision > 0:
        return 2 * recall * precision / (recall + precision)
    return 0.0


def reference_scores(pred_joints, gt_joints, pred_vertices, gt_vertices) -> dict:
    joints_aligned, joints_root_relative = ReferenceEvalUtil(21), ReferenceEvalUtil(21)
    joints_unaligned = ReferenceEvalUtil(21)
    num_vertices = gt_vertices.shape[1]
    vertices_aligned, vertices_unaligned = ReferenceEvalUtil(num_vertices), ReferenceEvalUtil(num_vertices)
    f_5, f_15 = [], []
    for xyz_pred, xyz, verts_pred, verts in zip(pred_joints, gt_joints, pred_vertices, gt_vertices, strict=True):
        joints_root_relative.feed(xyz - xyz[0], xyz_pred - xyz_pred[0])
        joints_unaligned.feed(xyz, xyz_pred)
        vertices_unaligned.feed(verts, verts_pred)
        joints_aligned.feed(xyz, reference_align_w_scale(xyz, xyz_pred))
        verts_pred_aligned = reference_align_w_scale(verts, verts_pred)
        vertices_aligned.feed(verts, verts_pred_aligned)
        f_5.append(reference_fscore(verts, verts_pred_aligned, 0.005))
        f_15.append(reference_fscore(verts, verts_pred_aligned, 0.015))
    pa_mean, pa_median, pa_auc, pa_curve = joints_aligned.get_measures(0.0, 0.05, 100)
    rr_mean, rr_median, rr_auc_20_50, _ = joints_root_relative.get_measures(0.02, 0.05, 20)
    _, _, rr_auc_0_30, _ = joints_root_relative.get_measures(0.0, 0.03, 20)
    verts_mean, _, verts_auc, verts_curve = vertices_aligned.get_measures(0.0, 0.05, 100)
    unaligned_mean, _, _, _ = joints_unaligned.get_measures(0.0, 0.05, 100)
    unaligned_verts_mean, _, _, _ = vertices_unaligned.get_measures(0.0, 0.05, 100)
    return {
        "pa_mpjpe": pa_mean * 1000,
        "median_pa_mpjpe": pa_median * 1000,
        "auc_joints": pa_auc,
        "pck_joints": pa_curve,
        "mpjpe": rr_mean * 1000,
        "median_mpjpe": rr_median * 1000,
        "auc_20_50": rr_auc_20_50,
        "auc_0_30": rr_auc_0_30,
        "mpjpe_absolute": unaligned_mean * 1000,
        "mpvpe_absolute": unaligned_verts_mean * 1000,
        "pa_mpvpe": verts_mean * 1000,
        "auc_vertices": verts_auc,
        "pck_vertices": verts_curve,
        "f5": np.mean(f_5),
        "f15": np.mean(f_15),
    }


def test_vectorised_scores_equal_step_by_step_reference():
    pred_joints, gt_joints, pred_vertices, gt_vertices = random_hands(np.random.default_rng(0), batch_size=6)
    scores = freihand_scores(pred_joints, gt_joints, pred_vertices, gt_vertices)
    expected = reference_scores(pred_joints, gt_joints, pred_vertices, gt_vertices)
    for key, value in expected.items():
        np.testing.assert_allclose(scores[key], value, rtol=0, atol=1e-9, err_msg=key)
    # The random case exercises the curves: neither all-correct nor all-wrong.
    assert 0.0 < scores["auc_joints"] < 1.0 and 0.0 < scores["f5"] < 1.0


def test_procrustes_align_matches_scipy_reference_batched_and_single():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(4, 21, 3))
    pred = gt + 0.2 * rng.normal(size=gt.shape)
    batched = procrustes_align(pred, gt)
    for sample in range(4):
        expected = reference_align_w_scale(gt[sample].copy(), pred[sample].copy())
        np.testing.assert_allclose(batched[sample], expected, atol=1e-12)
        np.testing.assert_allclose(procrustes_align(pred[sample], gt[sample]), expected, atol=1e-12)


@pytest.mark.parametrize("mirror", [False, True])
def test_procrustes_align_undoes_similarity_transforms_and_reflections(mirror):
    gt = np.random.default_rng(2).normal(scale=0.05, size=(3, 21, 3))
    pred = similarity_transform(gt, scale=1.7, mirror=mirror)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def test_identical_inputs_give_zero_error_full_auc_and_f_scores():
    _, gt_joints, _, gt_vertices = random_hands(np.random.default_rng(3), batch_size=3)
    scores = freihand_scores(gt_joints, gt_joints, gt_vertices, gt_vertices)
    for key in ("mpjpe", "median_mpjpe", "mpvpe"):
        assert scores[key] == 0.0, key
    for key in ("auc_20_50", "auc_0_30", "f5", "f15"):
        assert scores[key] == pytest.approx(1.0), key
    # FreiHAND's alignment adds 1e-8 (metres) to both norms, which shrinks an identical copy by a factor
    # (n / (n + 1e-8))^2: aligned errors of a few nanometres, so only the 0 mm threshold fails.
    for key in ("pa_mpjpe", "median_pa_mpjpe", "pa_mpvpe"):
        assert 0.0 < scores[key] < 1e-4, key
    for key in ("pck_joints", "pck_vertices"):
        assert scores[key] == pytest.approx([0.0] + [1.0] * 99), key
    assert scores["auc_joints"] == pytest.approx(1.0 - 0.5 / 99)
    assert scores["auc_vertices"] == pytest.approx(1.0 - 0.5 / 99)
    assert scores["pck_thresholds_mm"] == pytest.approx(np.linspace(0, 50, 100).tolist())


@pytest.mark.parametrize("mirror", [False, True])
def test_transformed_copy_has_no_aligned_error_but_root_relative_error(mirror):
    _, gt_joints, _, gt_vertices = random_hands(np.random.default_rng(4), batch_size=3)
    scores = freihand_scores(
        similarity_transform(gt_joints, 1.3, mirror),
        gt_joints,
        similarity_transform(gt_vertices, 1.3, mirror),
        gt_vertices,
    )
    assert scores["pa_mpjpe"] == pytest.approx(0.0, abs=1e-4)
    assert scores["pa_mpvpe"] == pytest.approx(0.0, abs=1e-4)
    assert scores["f5"] == pytest.approx(1.0)
    assert scores["mpjpe"] > 10.0 and scores["mpvpe"] > 10.0


def test_root_relative_errors_of_known_offsets():
    _, gt_joints, _, gt_vertices = random_hands(np.random.default_rng(5), batch_size=2)
    offset = np.array([0.003, 0.004, 0.0])  # 5 mm
    # The whole hand moved: root-relative errors vanish, aligned errors too.
    moved = freihand_scores(gt_joints + offset, gt_joints, gt_vertices + offset, gt_vertices)
    assert moved["mpjpe"] == pytest.approx(0.0, abs=1e-9) and moved["mpvpe"] == pytest.approx(0.0, abs=1e-9)
    assert moved["pa_mpjpe"] == pytest.approx(0.0, abs=1e-4)
    # Every joint but the wrist moved by 5 mm: 20 of 21 joints are 5 mm off.
    fingers_moved = gt_joints.copy()
    fingers_moved[:, 1:] += offset
    scores = freihand_scores(fingers_moved, gt_joints, gt_vertices, gt_vertices + offset)
    assert scores["mpjpe"] == pytest.approx(5.0 * 20 / 21)
    assert scores["median_mpjpe"] == pytest.approx(5.0 * 20 / 21)
    # Vertices centred on each set's own wrist: the predicted wrist moved with nothing, the mesh by 5 mm.
    assert scores["mpvpe"] == pytest.approx(5.0)
    assert scores["pa_mpvpe"] == pytest.approx(0.0, abs=1e-4)
    # AUC over 0-30 mm: 20 of 21 keypoints are wrong below 5 mm, the wrist always correct.
    thresholds = np.linspace(0.0, 0.03, 20)
    expected_curve = (1 + 20 * (thresholds >= 0.005)) / 21
    assert scores["auc_0_30"] == pytest.approx(area_under_curve(expected_curve, thresholds))
    assert scores["auc_20_50"] == pytest.approx(1.0)


def test_absolute_errors_of_known_offsets():
    _, gt_joints, _, gt_vertices = random_hands(np.random.default_rng(5), batch_size=2)
    offset = np.array([0.003, 0.004, 0.0])  # 5 mm
    # The whole hand moved: no root-relative error, but every point is 5 mm off in the camera frame.
    moved = freihand_scores(gt_joints + offset, gt_joints, gt_vertices + offset, gt_vertices)
    assert moved["mpjpe_absolute"] == pytest.approx(5.0) and moved["mpvpe_absolute"] == pytest.approx(5.0)
    assert moved["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    # Every joint but the wrist moved by 5 mm, in one sample of two: 20 of 42 joints are 5 mm off.
    fingers_moved = gt_joints.copy()
    fingers_moved[0, 1:] += offset
    scores = freihand_scores(fingers_moved, gt_joints, gt_vertices, gt_vertices)
    assert scores["mpjpe_absolute"] == pytest.approx(5.0 * 20 / 42)
    assert scores["mpvpe_absolute"] == pytest.approx(0.0, abs=1e-12)
    # One joint 3, 4, 12 mm off (a 13 mm distance) in one of two samples: 13 / 42 mm.
    one_joint = gt_joints.copy()
    one_joint[1, 7] += [0.003, 0.004, 0.012]
    assert freihand_scores(one_joint, gt_joints)["mpjpe_absolute"] == pytest.approx(13.0 / 42)


def test_absolute_errors_are_the_mean_distance_without_alignment():
    pred_joints, gt_joints, pred_vertices, gt_vertices = random_hands(np.random.default_rng(8), batch_size=5)
    # Camera-frame points: the hands half a metre in front of the camera.
    depth = np.array([0.0, 0.0, 0.5])
    scores = freihand_scores(pred_joints + depth, gt_joints + depth, pred_vertices + depth, gt_vertices + depth)
    # FreiHAND's unaligned error: mean over samples and points of the Euclidean distance, in mm.
    distances = np.sqrt(((pred_joints - gt_joints) ** 2).sum(axis=-1))
    assert scores["mpjpe_absolute"] == pytest.approx(1000 * distances.mean(), rel=1e-12)
    vertex_distances = np.sqrt(((pred_vertices - gt_vertices) ** 2).sum(axis=-1))
    assert scores["mpvpe_absolute"] == pytest.approx(1000 * vertex_distances.mean(), rel=1e-12)
    # random_hands shifts every predicted hand as a whole by about a metre: the absolute error sees the shift,
    # the root-relative one does not.
    assert scores["mpjpe_absolute"] > 10 * scores["mpjpe"]


def test_pck_measures_hand_computed():
    # Keypoint 0 has errors 0, 1, 5; keypoint 1 has 2, 3, 4.
    errors = np.array([[0.0, 2.0], [1.0, 3.0], [5.0, 4.0]])
    measures = pck_measures(errors, thresholds=np.array([0.0, 1.0, 2.0, 3.0]))
    assert measures.mean == pytest.approx((2.0 + 3.0) / 2)
    assert measures.median == pytest.approx((1.0 + 3.0) / 2)
    # Keypoint 0 (counted with <=): 1/3, 2/3, 2/3, 2/3; keypoint 1: 0, 0, 1/3, 2/3.
    np.testing.assert_allclose(measures.pck, [1 / 6, 1 / 3, 1 / 2, 2 / 3])
    # Areas / 3: keypoint 0 (1/2 + 2/3 + 2/3) / 3 = 11/18, keypoint 1 (0 + 1/6 + 1/2) / 3 = 2/9.
    assert measures.auc == pytest.approx((11 / 18 + 2 / 9) / 2)
    assert area_under_curve(measures.pck, [0.0, 1.0, 2.0, 3.0]) == pytest.approx(measures.auc)


def test_f_scores_on_two_point_toy_cases():
    gt = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    pred = np.array([[[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]]])
    # gt -> pred: 0.1 and sqrt(1.01); pred -> gt: 0.1 and 0.1.
    # At 0.5: recall 1/2, precision 1, F = 2/3. At 0.05: nothing matches, F = 0 (not NaN). At 2: F = 1.
    np.testing.assert_allclose(f_scores(pred, gt, thresholds=[0.5, 0.05, 2.0]), [[2 / 3, 0.0, 1.0]])
    # A distance equal to the threshold does not count (strict <).
    np.testing.assert_allclose(
        f_scores(np.array([[[0.25, 0.0, 0.0]]]), np.zeros((1, 1, 3)), [0.25, 0.26]), [[0.0, 1.0]]
    )
    # Point clouds of different sizes need no correspondence.
    np.testing.assert_allclose(f_scores(pred[:, :1], gt, thresholds=[0.5]), [[2 * 0.5 * 1.0 / 1.5]])


def test_f_scores_are_per_sample():
    gt = np.zeros((2, 1, 3))
    pred = np.array([[[0.001, 0.0, 0.0]], [[0.01, 0.0, 0.0]]])
    np.testing.assert_allclose(f_scores(pred, gt, F_SCORE_THRESHOLDS_M), [[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="pred_points has 2 samples but gt_points has 1"):
        f_scores(pred, gt[:1], F_SCORE_THRESHOLDS_M)


def test_f_score_thresholds_and_pck_thresholds_are_freihands():
    assert F_SCORE_THRESHOLDS_M == (0.005, 0.015)
    np.testing.assert_allclose(FREIHAND_PCK_THRESHOLDS_M * 1000, np.linspace(0, 50, 100))
    np.testing.assert_allclose(STB_RHD_PCK_THRESHOLDS_M * 1000, np.linspace(20, 50, 20))


def test_point_errors_are_euclidean():
    np.testing.assert_allclose(
        point_errors(np.array([[3.0, 4.0, 0.0], [1.0, 2.0, 2.0]]), np.zeros((2, 3))), [5.0, 3.0]
    )


def test_scores_without_vertices_have_no_vertex_keys():
    pred_joints, gt_joints, _, _ = random_hands(np.random.default_rng(6), batch_size=2, num_vertices=1)
    scores = freihand_scores(pred_joints, gt_joints)
    assert not {"pa_mpvpe", "mpvpe", "mpvpe_absolute", "auc_vertices", "f5", "f15", "pck_vertices"} & scores.keys()
    assert len(scores["pck_joints"]) == len(scores["pck_thresholds_mm"]) == 100


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((np.zeros((2, 21, 3)), np.zeros((2, 20, 3))), r"pred_joints has shape \(2, 21, 3\) but gt_joints"),
        ((np.zeros((2, 21, 2)), np.zeros((2, 21, 2))), r"pred_joints must have shape \(batch, num_points, 3\)"),
        ((np.zeros((0, 21, 3)), np.zeros((0, 21, 3))), "pred_joints is an empty batch"),
        ((np.zeros((2, 21, 3)), np.full((2, 21, 3), np.nan)), r"gt_joints contains NaN .*samples \[0, 1\]"),
        ((np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), np.zeros((2, 778, 3))), "gt_vertices is missing"),
        (
            (np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), np.zeros((2, 778, 3)), np.zeros((2, 700, 3))),
            "pred_vertices has shape .* but gt_vertices",
        ),
        (
            (np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), np.zeros((3, 778, 3)), np.zeros((3, 778, 3))),
            "pred_vertices has 3 samples but pred_joints has 2",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        freihand_scores(*arguments)


def test_bad_thresholds_raise_clear_errors():
    with pytest.raises(ValueError, match="thresholds must be a 1D increasing"):
        pck_measures(np.zeros((2, 3)), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="pck has shape"):
        area_under_curve(np.zeros(3), np.array([0.0, 1.0]))
