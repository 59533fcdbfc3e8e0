"""Hand pose and mesh metrics as FreiHAND's official evaluation computes them, as a Hugging Face `evaluate` module.

Load it from this folder: `evaluate.load("evaluate_metrics/hand_mesh_metrics")`. The numbers come from
`clip_hand3d.metrics.freihand_scores`; see the metric card (README.md) for the definitions.
"""

import datasets
import evaluate
import numpy as np

from clip_hand3d.metrics import freihand_scores

_CITATION = """\
@inproceedings{zimmermann2019freihand,
  title={FreiHAND: A Dataset for Markerless Capture of Hand Pose and Shape from Single RGB Images},
  author={Zimmermann, Christian and Ceylan, Duygu and Yang, Jimei and Russell, Bryan and Argus, Max and Brox, Thomas},
  booktitle={IEEE International Conference on Computer Vision (ICCV)},
  year={2019}
}
"""

_DESCRIPTION = """\
3D hand pose and mesh metrics computed exactly as FreiHAND's official evaluation computes them: Procrustes-aligned
joint and vertex errors (PA-MPJPE, PA-MPVPE), PCK curves and their AUC over 0-50 mm, and F-scores of the aligned
mesh at 5 mm and 15 mm, and the unaligned errors of the points as given (absolute for camera-frame points:
MPJPE_absolute, MPVPE_absolute); plus root-relative errors (MPJPE, MPVPE) and the AUCs over 20-50 mm (STB/RHD
convention) and 0-30 mm (CLIP-Hand3D's ablations). Inputs are in metres, errors are reported in millimetres.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `dict`): one dict per sample with
        - "joints": 21 x 3 predicted joints in metres, FreiHAND order (joint 0, the wrist, is the root);
        - "vertices" (optional): 778 x 3 predicted mesh vertices in metres.
    references (`list` of `dict`): the ground truth, same layout. Vertices must be given for every sample of
        both predictions and references, or for none.

Returns:
    `dict` with `pa_mpjpe`, `median_pa_mpjpe`, `mpjpe`, `median_mpjpe` (root-relative), `mpjpe_absolute`
    (FreiHAND's unaligned error) (mm), `auc_joints`, `auc_20_50`, `auc_0_30`, the curves `pck_thresholds_mm` and
    `pck_joints`, and, with vertices, `pa_mpvpe`, `mpvpe` (root-relative), `mpvpe_absolute` (unaligned) (mm),
    `auc_vertices`, `pck_vertices`, `f5`, `f15`.

Examples:
    >>> import evaluate
    >>> hand_mesh_metrics = evaluate.load("evaluate_metrics/hand_mesh_metrics")
    >>> joints = [[0.01 * i, 0.002 * i * i, 0.5 + 0.001 * i] for i in range(21)]
    >>> moved = [[x + 0.003, y + 0.004, z] for x, y, z in joints]
    >>> scores = hand_mesh_metrics.compute(predictions=[{"joints": moved}], references=[{"joints": joints}])
    >>> round(scores["mpjpe"], 6), round(scores["pa_mpjpe"], 3), round(scores["mpjpe_absolute"], 6)
    (0.0, 0.0, 5.0)
"""

HAND_KEYS = ("joints", "vertices")


def _points_feature() -> datasets.List:
    """A list of (x, y, z) points in metres."""
    return datasets.List(datasets.List(datasets.Value("float64"), length=3))


def _complete_hand(name: str, hand: dict) -> dict:
    """Check one sample's keys and return it with both keys ("vertices" None when absent).

    Unknown keys are an error, since a misspelt "vertices" would otherwise be dropped without a word.
    """
    if not isinstance(hand, dict):
        raise ValueError(f"{name} must be a dict with 'joints' and optional 'vertices', got {type(hand).__name__}")
    unknown = sorted(set(hand) - set(HAND_KEYS))
    if unknown:
        raise ValueError(f"{name} has unknown keys {unknown}; expected {list(HAND_KEYS)}")
    if hand.get("joints") is None:
        raise ValueError(f"{name} has no 'joints'")
    return {"joints": hand["joints"], "vertices": hand.get("vertices")}


def _complete_hands(argument: str, hands: list[dict] | None) -> list[dict] | None:
    """`_complete_hand` on every sample of a batch."""
    if hands is None:
        return None
    return [_complete_hand(f"{argument}[{index}]", hand) for index, hand in enumerate(hands)]


def _stack(argument: str, hands: list[dict], key: str) -> np.ndarray | None:
    """The `key` points of all samples as one (B, N, 3) array; None when no sample has them."""
    given = [hand.get(key) is not None for hand in hands]
    if not any(given):
        return None
    if not all(given):
        missing = [index for index, is_given in enumerate(given) if not is_given]
        raise ValueError(f"{argument} samples {missing[:10]} have no '{key}': give them for every sample or none")
    shapes = sorted({np.shape(hand[key]) for hand in hands})
    if len(shapes) > 1:
        raise ValueError(f"{argument} '{key}' differ in shape across samples: {shapes}")
    return np.asarray([hand[key] for hand in hands], dtype=np.float64)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HandMeshMetrics(evaluate.Metric):
    """FreiHAND's hand pose and mesh metrics over a list of samples."""

    def _info(self) -> evaluate.MetricInfo:
        hand = {"joints": _points_feature(), "vertices": _points_feature()}
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": hand, "references": hand}),
            reference_urls=["https://github.com/lmb-freiburg/freihand"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Add samples; see the module's inputs description for their layout."""
        super().add_batch(
            predictions=_complete_hands("predictions", predictions),
            references=_complete_hands("references", references),
            **kwargs,
        )

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """Add one sample; see the module's inputs description for its layout."""
        super().add(
            prediction=None if prediction is None else _complete_hand("prediction", prediction),
            reference=None if reference is None else _complete_hand("reference", reference),
            **kwargs,
        )

    def _compute(self, predictions: list[dict], references: list[dict]) -> dict:
        if len(predictions) == 0:
            raise ValueError("no samples: predictions and references are empty")
        pred_vertices = _stack("predictions", predictions, "vertices")
        gt_vertices = _stack("references", references, "vertices")
        if (pred_vertices is None) != (gt_vertices is None):
            with_vertices, without = (
                ("predictions", "references") if gt_vertices is None else ("references", "predictions")
            )
            raise ValueError(
                f"{with_vertices} have 'vertices' but {without} do not: give them on both sides or neither"
            )
        return freihand_scores(
            pred_joints=_stack("predictions", predictions, "joints"),
            gt_joints=_stack("references", references, "joints"),
            pred_vertices=pred_vertices,
            gt_vertices=gt_vertices,
        )
