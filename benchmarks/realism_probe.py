"""Would a model trained on real photos take the synthetic hands for real? MediaPipe Hands reads N of them.

    python benchmarks/realism_probe.py --num 300 --seed 777 --out outputs/realism

Prints MediaPipe's detection rate and PA-MPJPE (per joint too), the median bone ratios against the published
table (`clip_hand3d.modeling.hand_anthropometry`) and the rendering speed; writes `realism.json` and
`contact_sheet.png` (the first 48 images, MediaPipe's landmarks in green, a red frame where it found no hand)
to `--out`. Needs the detector extra: pip install "clip-hand3d[detect]". The numbers of each change to the
synthetic hands are in docs/synthetic.md.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from clip_hand3d.data.synthetic.realism import BONE_NAMES, contact_sheet, probe_realism
from clip_hand3d.modeling.hand_joints import JOINT_NAMES

REAL_PHOTOS = "583 real photos with 3D labels (issue 13): MediaPipe finds 99.5 %, PA-MPJPE 11.3 mm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=300, help="synthetic images to probe")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--out", type=Path, default=None, help="folder for realism.json and contact_sheet.png")
    args = parser.parse_args()

    report, samples = probe_realism(args.num, args.seed, args.image_size, args.split)
    print(f"{args.num} synthetic hands ({args.image_size} px, seed {args.seed}, {args.split}):")
    print(f"  MediaPipe finds a hand in {100 * report.detection_rate:.1f} %, PA-MPJPE {report.pa_mpjpe_mm:.1f} mm")
    print(f"  for comparison, {REAL_PHOTOS}")
    print(
        "  per joint (mm): "
        + ", ".join(
            f"{name} {error:.1f}" for name, error in zip(JOINT_NAMES, report.pa_mpjpe_per_joint_mm, strict=True)
        )
    )
    print(f"  rendering: {report.render_images_per_second:.1f} images/s in this process")
    print(f"bone / wrist-to-middle-MCP ({report.wrist_to_middle_mcp_mm:.1f} mm), median over the hands:")
    print(f"  {'bone':<20} {'synthetic':>9} {'table':>7} {'error':>7}")
    for name, ratio, reference, error in zip(
        BONE_NAMES, report.bone_ratios, report.reference_ratios, report.bone_ratio_errors, strict=True
    ):
        print(f"  {name:<20} {ratio:9.3f} {reference:7.3f} {100 * error:+6.1f}%")
    print(f"  largest deviation: {100 * np.abs(report.bone_ratio_errors).max():.1f} %")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "realism.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        contact_sheet(samples[:48]).save(args.out / "contact_sheet.png")
        print(f"wrote {args.out / 'realism.json'} and {args.out / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
