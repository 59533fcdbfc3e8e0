"""What an export costs in accuracy: a runtime against the PyTorch model on held-out hands, after post-processing.

    from clip_hand3d.export import load_runtime
    from clip_hand3d.export.accuracy import compare_on_split
    report = compare_on_split(torch_model, load_runtime("exported/tiny-int8"), processor, "synthetic", 500)

Both models go through `clip_hand3d.evaluation.predict` on the same crops (the processor's eval transform), so the
points are root-relative metres exactly as `clip-hand3d evaluate` scores them. `deviation_mm` measures how far the
candidate's joints and vertices move from the reference's (independent of the ground truth: meaningful also for a
random-weight model); `scores` are FreiHAND's (PA-MPJPE and the rest) of each against the ground truth, which only
a trained model makes meaningful.
"""

import numpy as np
from torch.utils.data import DataLoader

from clip_hand3d.evaluation import predict, score_predictions
from clip_hand3d.validation import check_positive_int

MM = 1000.0


def deviation_mm(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-point distance (mm) between two `predict` outputs of the same samples: mean, 99th percentile and max of
    the joints and of the vertices."""
    deviations = {}
    for name in ("joints", "vertices"):
        distance = np.linalg.norm(candidate[f"pred_{name}"] - reference[f"pred_{name}"], axis=-1) * MM
        deviations[f"{name}_mean_mm"] = float(distance.mean())
        deviations[f"{name}_p99_mm"] = float(np.percentile(distance, 99))
        deviations[f"{name}_max_mm"] = float(distance.max())
    return deviations


def held_out_loader(processor, spec: str, num_samples: int, batch_size: int = 32) -> DataLoader:
    """Batches of the held-out split of `spec` (`num_samples` synthetic hands for "synthetic"), cropped by
    `processor` as at inference."""
    from clip_hand3d.training.data import PromptCollator, load_split, training_transform, with_sample_transform

    check_positive_int("num_samples", num_samples)
    image_size = processor.image_processor.image_size
    rows = load_split(spec, train=False, image_size=image_size, eval_samples=num_samples)
    rows = rows.select(range(min(num_samples, len(rows))))
    samples = with_sample_transform(rows, training_transform(processor))
    return DataLoader(samples, batch_size=batch_size, collate_fn=PromptCollator(None))


def compare_on_split(reference, candidate, processor, spec: str = "synthetic", num_samples: int = 500) -> dict:
    """The candidate runtime against the reference model on `num_samples` held-out hands of `spec`: "deviation"
    (see `deviation_mm`), "scores" {"reference", "candidate"} (FreiHAND's, mm), and "pa_mpjpe_loss_mm" (the
    candidate's PA-MPJPE minus the reference's)."""
    loader = held_out_loader(processor, spec, num_samples)
    predictions = {"reference": predict(reference, loader), "candidate": predict(candidate, loader)}
    scores = {name: score_predictions(values) for name, values in predictions.items()}
    return {
        "samples": len(predictions["reference"]["pred_joints"]),
        "deviation": deviation_mm(predictions["reference"], predictions["candidate"]),
        "scores": scores,
        "pa_mpjpe_loss_mm": scores["candidate"]["pa_mpjpe"] - scores["reference"]["pa_mpjpe"],
    }
