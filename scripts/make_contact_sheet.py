"""Draw a contact sheet of synthetic samples with their 2D skeletons: `docs/synthetic_samples.png`.

    python scripts/make_contact_sheet.py --out docs/synthetic_samples.png --rows 4 --columns 4

Each tile is one sample of `clip_hand3d.data.synthetic.render_sample` (seed 0, split "train", some left hands)
with its projected joints (`joints_uv`) and bones drawn in one colour per finger, and its hand box.
"""

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

from clip_hand3d.data.synthetic import render_sample
from clip_hand3d.modeling.hand_joints import JOINT_PARENTS

# Thumb, index, middle, ring, little.
FINGER_COLOURS = [(255, 60, 60), (255, 200, 0), (60, 220, 60), (0, 170, 255), (200, 80, 255)]
WRIST_COLOUR = (255, 255, 255)
BOX_COLOUR = (255, 255, 255)


def joint_colour(joint: int) -> tuple[int, int, int]:
    """Colour of a joint (and of the bone that ends at it): its finger's colour, white for the wrist."""
    return WRIST_COLOUR if joint == 0 else FINGER_COLOURS[(joint - 1) // 4]


def draw_sample(row: dict, tile_size: int) -> PIL.Image.Image:
    """The sample's image resized to `tile_size`, with its hand box, bones and joints drawn on top."""
    image = row["image"].convert("RGB")
    scale = tile_size / image.width
    # Pixel centres are at integer coordinates: a point x maps to (x + 0.5) * scale - 0.5 in the tile.
    uv = (np.asarray(row["joints_uv"], dtype=np.float64) + 0.5) * scale - 0.5
    box = (np.asarray(row["box"], dtype=np.float64) + 0.5) * scale - 0.5
    tile = image.resize((tile_size, tile_size), PIL.Image.Resampling.LANCZOS)
    draw = PIL.ImageDraw.Draw(tile)
    draw.rectangle(box.tolist(), outline=BOX_COLOUR, width=1)
    for joint, parent in enumerate(JOINT_PARENTS):
        if parent >= 0:
            draw.line([tuple(uv[parent]), tuple(uv[joint])], fill=joint_colour(joint), width=1)
    radius = 2
    for joint, (u, v) in enumerate(uv):
        draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=joint_colour(joint), outline=(0, 0, 0))
    if row["is_left"]:
        draw.text((3, 2), "L", fill=(255, 255, 255))
    return tile


def make_contact_sheet(
    rows: int, columns: int, tile_size: int, image_size: int, seed: int, p_left: float
) -> PIL.Image.Image:
    """A grid of `rows` x `columns` samples (indices 0, 1, ...), each drawn by `draw_sample`."""
    sheet = PIL.Image.new("RGB", (columns * tile_size, rows * tile_size))
    for index in range(rows * columns):
        row = render_sample(index, seed=seed, image_size=image_size, p_left=p_left)
        sheet.paste(draw_sample(row, tile_size), ((index % columns) * tile_size, (index // columns) * tile_size))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/synthetic_samples.png", help="PNG file to write")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=200, help="side of one tile in pixels")
    parser.add_argument("--image-size", type=int, default=224, help="side of the rendered images in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--p-left", type=float, default=0.25, help="probability of a mirrored left hand")
    parser.add_argument("--colours", type=int, default=256, help="palette size of the PNG (keeps the file small)")
    args = parser.parse_args()

    sheet = make_contact_sheet(args.rows, args.columns, args.tile_size, args.image_size, args.seed, args.p_left)
    sheet = sheet.quantize(colors=args.colours, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
