"""Overlays and 3D files of hands, checked on synthetic hands whose true mesh, camera and mask are known."""

import numpy as np
import pytest
import trimesh

from clip_hand3d.data.synthetic.hand import hand_faces
from clip_hand3d.data.synthetic.render import render_sample
from clip_hand3d.data.synthetic.scene import sample_generator, sample_scene
from clip_hand3d.visualization import HAND_COLORS, draw_hands, hands_scene, write_hands_glb, write_hands_obj


def true_hand(p_left: float) -> tuple[np.ndarray, dict, np.ndarray]:
    """(image, the hand as the pipeline describes it, from the labels, the hand's mask) of a synthetic sample with
    nothing in front of the hand (occluders hide part of the hand from the mask but not from the mesh)."""
    index = next(
        i for i in range(3, 50) if not sample_scene(sample_generator(5, i), 224)["camera_effects"]["occluders"]
    )
    row = render_sample(index, 5, 224, "train", p_left=p_left)
    hand = {
        "vertices_cam": row["vertices_xyz"],
        "faces": hand_faces(),
        "K": row["K"],
        "keypoints_2d": row["joints_uv"],
        "is_left": row["is_left"],
    }
    return np.asarray(row["image"]), hand, np.asarray(row["mask"]) > 0


@pytest.mark.parametrize("p_left", [0.0, 1.0], ids=["right", "left"])
def test_the_mesh_covers_the_hand_in_the_photo(p_left):
    image, hand, mask = true_hand(p_left)
    overlay = np.asarray(draw_hands(image, [hand], skeleton=False))
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    changed = np.abs(overlay.astype(int) - image).sum(axis=2) > 0
    assert (changed & mask).sum() / (changed | mask).sum() > 0.95
    # Drawn in the first hand's colour: the overlay moves the pixels towards it.
    towards = (overlay[mask].astype(float) - image[mask]) @ (np.asarray(HAND_COLORS[0]) - 0.5)
    assert np.mean(towards > 0) > 0.8


def test_the_skeleton_is_drawn_at_the_keypoints():
    image, hand, _ = true_hand(0.0)
    overlay = np.asarray(draw_hands(image, [hand], mesh=False))
    for x, y in np.round(hand["keypoints_2d"]).astype(int):
        assert np.abs(overlay[y, x].astype(int) - image[y, x]).sum() > 0
    far_corner = (0, 0) if hand["keypoints_2d"].min() > 20 else (223, 223)
    assert np.array_equal(overlay[far_corner], image[far_corner])


def test_hands_hide_each_other_by_depth():
    image, hand, mask = true_hand(0.0)
    farther = dict(hand, vertices_cam=hand["vertices_cam"] * 1.5)  # the same projection, 1.5 x as far
    overlay = np.asarray(draw_hands(image, [farther, hand], skeleton=False))
    # The nearer hand (the second: colour 1) is the one seen.
    colour_0, colour_1 = np.asarray(HAND_COLORS[0]), np.asarray(HAND_COLORS[1])
    seen = overlay[mask].astype(float) / 255
    assert np.mean(np.linalg.norm(seen - colour_1, axis=1) < np.linalg.norm(seen - colour_0, axis=1)) > 0.8


@pytest.mark.parametrize("p_left", [0.0, 1.0], ids=["right", "left"])
def test_glb_and_obj_hold_every_hand_outward_facing(tmp_path, p_left):
    _, hand, _ = true_hand(p_left)
    other = dict(hand, vertices_cam=hand["vertices_cam"] + [0.1, 0, 0])
    glb = trimesh.load(write_hands_glb([hand, other], tmp_path / "hands.glb"))
    side = "left" if p_left else "right"
    assert sorted(glb.geometry) == [f"hand_0_{side}", f"hand_1_{side}"]
    for mesh in glb.geometry.values():
        assert mesh.vertices.shape == (778, 3) and len(mesh.faces) == len(hand_faces())
        assert mesh.volume > 0  # faces wound outwards, for left hands too
    # glTF axes: y up and the camera looking down -z, so the hand (in front of the camera) has z < 0.
    np.testing.assert_allclose(glb.geometry[f"hand_0_{side}"].vertices, hand["vertices_cam"] * [1, -1, -1], atol=1e-6)
    obj = trimesh.load(write_hands_obj([hand, other], tmp_path / "hands.obj"), force="mesh", process=False)
    assert len(obj.vertices) == 2 * 778


def test_bad_hands_raise_clear_errors():
    image, hand, _ = true_hand(0.0)
    with pytest.raises(ValueError, match="in front of the camera"):
        draw_hands(image, [dict(hand, vertices_cam=hand["vertices_cam"] * [1, 1, -1])])
    with pytest.raises(ValueError, match="share one camera"):
        draw_hands(image, [hand, dict(hand, K=hand["K"] * 2)])
    with pytest.raises(ValueError, match="no hands to write"):
        write_hands_glb([], "never.glb")
    assert len(hands_scene([]).geometry) == 0
    assert np.array_equal(np.asarray(draw_hands(image, [])), image)


def test_a_downscaled_drawing_matches_the_downscaled_photo():
    image, hand, mask = true_hand(0.0)
    large = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # 448 px: pixel (x, y) -> 2x + 0.5
    large_hand = dict(hand, keypoints_2d=hand["keypoints_2d"] * 2 + 0.5)
    large_hand["K"] = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]]) @ hand["K"]
    overlay = np.asarray(draw_hands(large, [large_hand], skeleton=False, max_side=224))
    assert overlay.shape == (224, 224, 3)
    changed = np.abs(overlay.astype(int) - np.asarray(draw_hands(large, [], max_side=224))).sum(axis=2) > 0
    assert (changed & mask).sum() / (changed | mask).sum() > 0.9
