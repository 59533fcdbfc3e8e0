"""Synthetic hands written in FreiHAND's folder layout, the files `clip_hand3d.data.freihand.load_freihand` reads."""

import json
import multiprocessing
import os
from pathlib import Path

from clip_hand3d.data.freihand import FREIHAND_IMAGE_NAME, FREIHAND_SPLITS
from clip_hand3d.data.synthetic.render import check_synthetic_image_size, render_sample
from clip_hand3d.validation import check_choice, check_non_negative_int, check_positive_int

# FreiHAND's split names and the synthetic streams (`scene.SPLIT_STREAMS`) they draw from.
FREIHAND_SPLIT_STREAMS = {"training": "train", "evaluation": "test"}
FREIHAND_LABEL_FILES = ("K", "xyz", "verts", "scale")  # {split}_{role}.json written per split
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}  # FreiHAND-layout images and masks: no chroma subsampling


def _write_freihand_sample(task: tuple[int, int, int, str, Path]) -> dict:
    """Render sample `index` and write its image and mask as FreiHAND JPEGs; return its labels as lists."""
    index, seed, image_size, split, folder = task
    row = render_sample(index, seed, image_size, FREIHAND_SPLIT_STREAMS[split])
    name = FREIHAND_IMAGE_NAME.format(index=index)
    row["image"].save(folder / "rgb" / name, **JPEG_OPTIONS)
    row["mask"].save(folder / "mask" / name, **JPEG_OPTIONS)
    return {
        "K": row["K"].tolist(),
        "xyz": row["joints_xyz"].tolist(),
        "verts": row["vertices_xyz"].tolist(),
        "scale": row["scale"],
    }


def write_synthetic_freihand(
    out_dir: str | os.PathLike,
    num_samples: int,
    seed: int = 0,
    split: str = "training",
    image_size: int = 224,
    num_proc: int | None = None,
) -> Path:
    """Write `num_samples` synthetic right hands in FreiHAND's folder layout under `out_dir`.

    Writes `{split}/rgb/%08d.jpg`, `{split}/mask/%08d.jpg` and `{split}_K.json`, `{split}_xyz.json`,
    `{split}_verts.json`, `{split}_scale.json` (no MANO parameters: the hand is not MANO). There is one
    colour version per label, so read the training split with
    `load_freihand(out_dir, "training", num_colour_versions=1)`.

    Args:
        out_dir: the folder that becomes the `FreiHAND_pub_v2`-like root.
        num_samples: number of images.
        seed: the synthetic set's seed; "training" and "evaluation" use the disjoint "train" and "test" streams.
        split: "training" or "evaluation".
        image_size: side of the square images in pixels (FreiHAND's is 224).
        num_proc: processes rendering in parallel (None: this one).

    Returns:
        `out_dir` as a Path.

    Raises:
        FileExistsError: `out_dir` already holds files of `split` (a smaller set written over a larger one
            would leave images without labels).
    """
    check_choice("split", split, FREIHAND_SPLITS)
    check_non_negative_int("seed", seed)
    check_positive_int("num_samples", num_samples)
    check_synthetic_image_size(image_size)
    out_dir = Path(out_dir)
    folder = out_dir / split
    existing = [
        path
        for path in [folder, *(out_dir / f"{split}_{role}.json" for role in FREIHAND_LABEL_FILES)]
        if path.exists()
    ]
    if existing:
        raise FileExistsError(
            f"{out_dir} already holds a FreiHAND {split} split ({', '.join(str(path) for path in existing)}); "
            "write into an empty folder, or delete these first"
        )
    for kind in ("rgb", "mask"):
        (folder / kind).mkdir(parents=True)
    tasks = [(index, seed, image_size, split, folder) for index in range(num_samples)]
    if num_proc is None or num_proc <= 1:
        labels = [_write_freihand_sample(task) for task in tasks]
    else:
        with multiprocessing.Pool(num_proc) as pool:
            labels = pool.map(_write_freihand_sample, tasks, chunksize=max(1, min(64, num_samples // (4 * num_proc))))
    for role in FREIHAND_LABEL_FILES:
        with open(out_dir / f"{split}_{role}.json", "w", encoding="utf-8") as file:
            json.dump([label[role] for label in labels], file)
    return out_dir
