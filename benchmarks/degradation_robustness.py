"""Held-out PA-MPJPE of trained models on clean crops and on crops that a camera in the wild degrades: an occluding
rectangle, blur, pixel noise, all three. Measures what `train.py --augment_degradations` buys (docs/synthetic.md).

    python benchmarks/degradation_robustness.py --models outputs/aug outputs/aug-degradations --num 500

Every model sees the same degraded crops: each condition is `HandAugmentationConfig`'s degradation at probability
1 (no geometry or colour change), drawn per hand from one seed. Blur and noise go up to twice the strength
`--augment_degradations` trains with, so the table shows robustness inside and just beyond the training range.
"""

import argparse
import dataclasses
import json

from torch.utils.data import DataLoader

from clip_hand3d.evaluation import predict, score_predictions
from clip_hand3d.modeling import CLIPHand3DModel
from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.data import PromptCollator, load_split, with_sample_transform
from clip_hand3d.training.transforms import HandSampleTransform
from clip_hand3d.variants import load_processor

TRAINING = HandAugmentationConfig.train(degradations=True)
CONDITIONS = {
    "clean": {},
    "occluder": {"occlusion_probability": 1.0},
    "blur": {"blur_probability": 1.0, "blur_sigma": 2 * TRAINING.blur_sigma},
    "noise": {"noise_probability": 1.0, "noise_std": 2 * TRAINING.noise_std},
    "all three": {
        "occlusion_probability": 1.0,
        "blur_probability": 1.0,
        "blur_sigma": 2 * TRAINING.blur_sigma,
        "noise_probability": 1.0,
        "noise_std": 2 * TRAINING.noise_std,
    },
}


def condition_config(name: str) -> HandAugmentationConfig:
    """The evaluation crop (no geometry or colour change) with condition `name`'s degradations always on."""
    return dataclasses.replace(HandAugmentationConfig.eval(), **CONDITIONS[name])


def pa_mpjpe_per_condition(model_dir: str, num: int, seed: int, batch_size: int) -> dict[str, float]:
    """{condition: held-out PA-MPJPE in mm} of the model in `model_dir` on `num` held-out synthetic hands."""
    model = CLIPHand3DModel.from_pretrained(model_dir, with_text_model=False).eval()
    processor = load_processor(model_dir, model.config)
    rows = load_split("synthetic", train=False, image_size=model.config.image_size, eval_samples=num)
    scores = {}
    for name in CONDITIONS:
        transform = HandSampleTransform(processor.image_processor, augmentation=condition_config(name), seed=seed)
        loader = DataLoader(
            with_sample_transform(rows, transform), batch_size=batch_size, collate_fn=PromptCollator(None)
        )
        scores[name] = score_predictions(predict(model, loader))["pa_mpjpe"]
        print(f"{model_dir}  {name:10s} {scores[name]:6.2f} mm", flush=True)
    return scores


def markdown(results: dict[str, dict[str, float]]) -> str:
    """One row per model: PA-MPJPE per condition, and each degraded condition's change from clean."""
    header = "| model | " + " | ".join(CONDITIONS) + " |\n|---|" + "---|" * len(CONDITIONS)
    rows = []
    for model_dir, scores in results.items():
        cells = [f"{scores['clean']:.2f}"]
        cells += [f"{scores[name]:.2f} ({scores[name] - scores['clean']:+.2f})" for name in list(CONDITIONS)[1:]]
        rows.append(f"| {model_dir} | " + " | ".join(cells) + " |")
    return "\n".join([header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="trained model folders")
    parser.add_argument("--num", type=int, default=500, help="held-out synthetic hands")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradations")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="write {model: {condition: mm}} here")
    args = parser.parse_args()
    results = {model: pa_mpjpe_per_condition(model, args.num, args.seed, args.batch_size) for model in args.models}
    print("\nPA-MPJPE in mm (change from clean):\n")
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
