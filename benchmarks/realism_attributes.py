"""Which synthetic hands MediaPipe Hands misses: its detection rate per tercile of scene attributes, and under
image-wide interventions (brighter, gamma, grey, upside down). Complements `realism_probe.py` (docs/synthetic.md).

    python benchmarks/realism_attributes.py --num 300
"""

import argparse

import numpy as np
from scipy import ndimage

from clip_hand3d.data.synthetic.render import scene_row
from clip_hand3d.data.synthetic.scene import sample_generator, sample_scene
from clip_hand3d.detection import MediaPipeHandDetector

LUMA = np.array([0.299, 0.587, 0.114])
INTERVENTIONS = {
    "as rendered": lambda rgb: rgb,
    "brightness x1.4": lambda rgb: np.clip(rgb * 1.4, 0, 255),
    "gamma 0.6": lambda rgb: 255 * (rgb / 255) ** 0.6,
    "grey": lambda rgb: np.repeat((rgb @ LUMA)[..., None], 3, axis=-1),
    "upside down": lambda rgb: rgb[::-1],
}


def attributes(scene: dict, row: dict) -> dict:
    """Attributes of one rendered scene: brightness and contrast of the hand against its surroundings (0-255),
    its size (px), how squarely the palm faces the camera (|cos|), curl (mean wrist-to-fingertip over
    wrist-to-middle-MCP), blur (defocus sigma + motion length / 3, px) and the number of occluders."""
    rgb = np.asarray(row["image"].convert("RGB"), dtype=np.float64)
    mask = np.asarray(row["mask"]) > 0
    ring = ndimage.binary_dilation(mask, iterations=8) & ~mask
    luma = rgb @ LUMA
    joints = np.asarray(row["joints_xyz"])
    palm_normal = np.cross(joints[5] - joints[0], joints[17] - joints[0])
    box = np.asarray(row["box"])
    effects = scene["camera_effects"]
    return {
        "hand brightness": luma[mask].mean(),
        "contrast to surroundings": abs(luma[mask].mean() - luma[ring].mean()),
        "hand size (px)": max(box[2] - box[0], box[3] - box[1]),
        "palm facing the camera": abs(palm_normal @ joints[0])
        / np.linalg.norm(palm_normal)
        / np.linalg.norm(joints[0]),
        "openness": np.mean([np.linalg.norm(joints[tip] - joints[0]) for tip in (8, 12, 16, 20)])
        / np.linalg.norm(joints[9] - joints[0]),
        "blur (px)": effects["defocus_sigma"] + effects["motion_length"] / 3,
        "occluders": len(effects["occluders"]),
        "skin albedo": (scene["vertex_colors"][:778] @ LUMA).mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=300)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    detector = MediaPipeHandDetector(max_num_hands=1)
    table, found = [], {name: [] for name in INTERVENTIONS}
    for index in range(args.num):
        scene = sample_scene(sample_generator(args.seed, index, "train"), args.image_size)
        row = scene_row(scene, args.image_size)
        rgb = np.asarray(row["image"].convert("RGB"), dtype=np.float64)
        for name, intervention in INTERVENTIONS.items():
            image = np.ascontiguousarray(intervention(rgb).astype(np.uint8))
            found[name].append(bool(detector.detect_landmarks(image)))
        table.append(attributes(scene, row))
    detected = np.array(found["as rendered"])
    print(f"{args.num} hands, seed {args.seed}: MediaPipe finds {detected.mean():.1%}\n")
    print("| attribute | lowest third | middle third | highest third |\n|---|---|---|---|")
    for key in table[0]:
        values = np.array([entry[key] for entry in table], dtype=np.float64)
        edges = np.quantile(values, [0, 1 / 3, 2 / 3, 1])
        cells = []
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            chosen = (values >= low) & (values <= high)
            cells.append(f"{detected[chosen].mean():.0%} ({low:.2g}-{high:.2g})")
        print(f"| {key} | " + " | ".join(cells) + " |")
    print("\n| image | MediaPipe finds |\n|---|---|")
    for name, hits in found.items():
        print(f"| {name} | {np.mean(hits):.1%} |")


if __name__ == "__main__":
    main()
