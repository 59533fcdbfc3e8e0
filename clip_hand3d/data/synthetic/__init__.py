"""The built-in synthetic hand data set: random hands of the package's parametric model, rendered on the CPU.

Every sample is a pure function of `(seed, split, index)`: its random generator is seeded from those three
numbers alone, so any subset of a data set can be regenerated on its own, in any order and in parallel, and
the "train" and "test" splits draw from disjoint streams.

One sample (version 2, `SYNTHETIC_DATA_VERSION`; what each change did is measured in docs/synthetic.md):
- the hand: `ParametricHand`, whose joint centres follow published anthropometry (`modeling/hand_anthropometry`),
  in a gesture, grasp or free pose with the couplings of real fingers (`clip_hand3d.data.pose_prior`), oriented
  as hands appear in photos: palm, back or side to the camera, fingers mostly up, egocentric views, and 15 % any
  orientation (`hand.sample_view`);
- the camera: a random pinhole (focal length 0.8-1.6 x the image side, principal point near the centre), the hand
  0.3-0.8 m in front of it with its box covering 35-90 % of the image side;
- a forearm bent a little at the wrist (bare or in a sleeve, its cut end out of the image; left out when it cannot
  be);
- the skin: a tone from light to dark (palms lighter) with smooth variation, nails, joint creases and ambient
  occlusion; a key and a fill light, an ambient tinted by the background, a soft specular sheen;
- a procedural background (gradients, low-frequency noise textures, stripes, rectangles, ellipses, polygons);
- what a camera adds (`camera_effects`): objects partly in front of the hand, white balance and exposure,
  vignetting, defocus and motion blur, sensor grain, JPEG compression.
Labels are exact: the joints and vertices that were rendered, in the camera frame, in metres. The mask is the
hand's visible pixels (the forearm and the occluders hide it but are not part of it).

Modules, by job: `hand`, `camera`, `forearm` (the geometry of a sample), `appearance` (skin colours, details and
backgrounds), `camera_effects` (occluders and the camera's effects), `scene` (the sample's generator and
everything it draws), `render` (a scene as a row, mirrored for left hands), `dataset` (`load_synthetic`, a cached
`datasets.Dataset` in the shared schema `HAND_FEATURES_WITH_MESH`, and `iter_synthetic`, a streaming
`datasets.IterableDataset`), `freihand_export` (`write_synthetic_freihand`, the `make-synthetic` command: the
FreiHAND folder layout that `clip_hand3d.data.freihand.load_freihand` reads), `realism` (the realism probe that
`benchmarks/realism_probe.py` runs). Their argument checks are `clip_hand3d.validation`'s.
"""

from clip_hand3d.data.synthetic.dataset import SYNTHETIC_DATA_VERSION, iter_synthetic, load_synthetic
from clip_hand3d.data.synthetic.freihand_export import write_synthetic_freihand
from clip_hand3d.data.synthetic.render import render_sample

__all__ = ["SYNTHETIC_DATA_VERSION", "iter_synthetic", "load_synthetic", "render_sample", "write_synthetic_freihand"]
