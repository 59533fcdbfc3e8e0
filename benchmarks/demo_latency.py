"""Milliseconds per photo of what the demo does, stage by stage, and the serving process's memory.

    python benchmarks/demo_latency.py --variants clip-hand3d-tiny clip-hand3d-r50 --repeats 20

For each variant (random weights: speed does not depend on them) and each example photo of the Space: MediaPipe
detection, crops, network, post-processing (the pipeline's own timings), drawing the overlay and writing the
.glb, as medians over `--repeats` runs after one warm-up; then the resident memory of this process. Run it on an
otherwise idle machine; the stages are measured in the same runs, so their ratios hold on a busy one too.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import psutil
import torch

from clip_hand3d import CLIPHand3DConfig, CLIPHand3DModel, HandMeshPipeline
from clip_hand3d.variants import load_processor, resolve_variant
from clip_hand3d.visualization import draw_hands, write_hands_glb

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "spaces_demo" / "examples"
STAGES = ("detection", "preprocess", "network", "post_process", "drawing", "glb", "total")


def random_weight_pipeline(variant: str) -> HandMeshPipeline:
    config = CLIPHand3DConfig.from_pretrained(resolve_variant(variant), with_text_model=False)
    model = CLIPHand3DModel(config).eval()
    return HandMeshPipeline(model, load_processor(variant, config), detector="mediapipe")


def time_photo(pipe: HandMeshPipeline, image: np.ndarray, folder: Path) -> dict[str, float]:
    """One photo through the demo's stages -> milliseconds per stage."""
    start = time.perf_counter()
    output = pipe.predict(image)
    times = {name: output.timings_ms[name] for name in ("detection", "preprocess", "network", "post_process")}
    mark = time.perf_counter()
    draw_hands(image, output.hands, max_side=1024)
    times["drawing"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    if output.hands:
        write_hands_glb(output.hands, folder / "hands.glb")
    times["glb"] = (time.perf_counter() - mark) * 1000
    times["total"] = (time.perf_counter() - start) * 1000
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["clip-hand3d-tiny", "clip-hand3d-r50"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(psutil.cpu_count(logical=False) or 1)
    photos = {
        path.stem: np.asarray(PIL.Image.open(path).convert("RGB")) for path in sorted(EXAMPLES_DIR.glob("*.png"))
    }
    print(f"| variant | photo | hands | {' | '.join(STAGES)} |")
    print("|---|---|---|" + "---|" * len(STAGES))
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants:
            pipe = random_weight_pipeline(variant)
            for name, image in photos.items():
                time_photo(pipe, image, Path(folder))
                runs = [time_photo(pipe, image, Path(folder)) for _ in range(args.repeats)]
                medians = [statistics.median(run[stage] for run in runs) for stage in STAGES]
                hands = len(pipe(image))
                print(f"| {variant} | {name} | {hands} | " + " | ".join(f"{value:.1f}" for value in medians) + " |")
    print(f"\nresident memory of this process: {psutil.Process().memory_info().rss / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
