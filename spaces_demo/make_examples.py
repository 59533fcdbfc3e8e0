"""Render the demo's example photos from the package's synthetic hands (no data set needed):

    python spaces_demo/make_examples.py      # writes spaces_demo/examples/*.png

`right_hand.png`: one right hand; `two_hands.png`: a left hand (a mirrored synthetic image) beside a right hand.
"""

from pathlib import Path

import numpy as np
import PIL.Image

from clip_hand3d.data.synthetic.render import render_sample

EXAMPLES_DIR = Path(__file__).parent / "examples"
SEED, SIZE = 777, 224
# Samples of this seed that MediaPipe Hands finds with a confident, correct handedness.
RIGHT_HAND, LEFT_HAND, SECOND_RIGHT_HAND = 1, 8, 22


def synthetic_photo(index: int, left: bool = False) -> np.ndarray:
    image = np.asarray(render_sample(index, SEED, SIZE, "train")["image"].convert("RGB"))
    return np.ascontiguousarray(image[:, ::-1]) if left else image


def main() -> None:
    EXAMPLES_DIR.mkdir(exist_ok=True)
    PIL.Image.fromarray(synthetic_photo(RIGHT_HAND)).save(EXAMPLES_DIR / "right_hand.png", optimize=True)
    pair = np.concatenate([synthetic_photo(LEFT_HAND, left=True), synthetic_photo(SECOND_RIGHT_HAND)], axis=1)
    PIL.Image.fromarray(pair).save(EXAMPLES_DIR / "two_hands.png", optimize=True)


if __name__ == "__main__":
    main()
