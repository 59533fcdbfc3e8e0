"""CLIPHand3DModel: shapes, losses, the frozen text tower, batch independence, topology, pretrained loading."""

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel, ResNetBackbone

from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel, HandTopology
from clip_hand3d.modeling.losses import LABEL_NAMES, LOSS_TERMS
from tests.conftest import random_batch


def test_forward_shapes_and_every_loss_term(tiny_config):
    config = CLIPHand3DConfig(**{**tiny_config.to_dict(), "loss_weight_joint_offsets": 0.5})
    torch.manual_seed(0)
    model = CLIPHand3DModel(config)
    batch = random_batch(config, batch_size=3)
    view2 = random_batch(config, batch_size=3, seed=1)
    labels = {
        **batch.pop("labels"),
        "joints_uvd_view2": view2["labels"]["joints_uvd"],
        "vertices_uvd_view2": view2["labels"]["vertices_uvd"],
        "view2_affine_uv": torch.eye(2, 3).repeat(3, 1, 1),
    }
    outputs = model(**batch, pixel_values_view2=view2["pixel_values"], labels=labels)
    assert outputs.joints_uvd.shape == (3, 21, 3)
    assert outputs.vertices_uvd.shape == (3, 778, 3)
    assert [heatmap.shape for heatmap in outputs.heatmaps] == [(3, 21, 32)] * 3
    assert outputs.logits_per_pose.shape == (3, 3, 3)
    assert outputs.faces.shape == (1552, 3)
    for name in LOSS_TERMS:
        assert torch.isfinite(getattr(outputs, name)), name
    expected = (
        config.loss_weight_pose * (outputs.loss_joints + outputs.loss_vertices)
        + config.loss_weight_mesh * (outputs.loss_normal + outputs.loss_edge)
        + config.loss_weight_consistency * (outputs.loss_consistency_2d + outputs.loss_consistency_3d)
        + config.loss_weight_clip * outputs.loss_clip
        + config.loss_weight_joint_offsets * outputs.loss_joint_offsets
    )
    assert outputs.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_joint_offset_loss_is_left_out_at_weight_zero(tiny_model, tiny_config):
    assert tiny_config.loss_weight_joint_offsets == 0.0
    outputs = tiny_model(**random_batch(tiny_config))
    assert outputs.loss_joint_offsets is None
    expected = (
        tiny_config.loss_weight_pose * (outputs.loss_joints + outputs.loss_vertices)
        + tiny_config.loss_weight_mesh * (outputs.loss_normal + outputs.loss_edge)
        + tiny_config.loss_weight_clip * outputs.loss_clip
    )
    assert outputs.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_joints_lie_in_the_heatmap_and_vertices_start_at_upsampled_joints(tiny_model, tiny_config):
    tiny_model.eval()
    with torch.no_grad():
        outputs = tiny_model(pixel_values=random_batch(tiny_config)["pixel_values"])
    joints = outputs.joints_uvd
    assert joints.min() >= 0 and joints[..., :2].max() <= tiny_config.heatmap_size - 1
    assert outputs.loss is None and outputs.logits_per_pose is None


def test_text_tower_is_frozen_and_gets_no_gradient(tiny_model, tiny_config):
    tiny_model.train()
    assert not tiny_model.text_model.training
    outputs = tiny_model(**random_batch(tiny_config))
    outputs.loss.backward()
    assert all(
        not parameter.requires_grad and parameter.grad is None for parameter in tiny_model.text_model.parameters()
    )
    trainable = [name for name, parameter in tiny_model.named_parameters() if parameter.requires_grad]
    assert all(parameter.grad is not None for name, parameter in tiny_model.named_parameters() if name in trainable)
    assert tiny_model.pose_text_matcher.logit_scales.grad is not None


def test_inference_never_runs_the_text_tower(tiny_model, tiny_config, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the text tower ran at inference")

    monkeypatch.setattr(tiny_model.text_model, "forward", fail)
    tiny_model.eval()
    with torch.no_grad():
        tiny_model(pixel_values=random_batch(tiny_config)["pixel_values"])


def test_a_sample_never_depends_on_its_batch(tiny_model, tiny_config):
    tiny_model.eval()
    pixels = random_batch(tiny_config, batch_size=4)["pixel_values"]
    with torch.no_grad():
        together = tiny_model(pixel_values=pixels)
        alone = tiny_model(pixel_values=pixels[2:3])
    assert torch.allclose(together.vertices_uvd[2:3], alone.vertices_uvd, atol=1e-4)
    assert torch.allclose(together.joints_uvd[2:3], alone.joints_uvd, atol=1e-4)


def test_without_text_model_there_are_no_text_weights(tiny_config):
    config = CLIPHand3DConfig(**{**tiny_config.to_dict(), "with_text_model": False})
    model = CLIPHand3DModel(config)
    assert model.text_model is None
    assert not any(name.startswith("text_model.") for name in model.state_dict())
    with pytest.raises(ValueError, match="with_text_model=False"):
        model(**random_batch(config))


@pytest.mark.parametrize("ablation", ["use_clip_loss", "use_feature_projection", "use_sparse_to_dense"])
def test_ablations_build_and_train(tiny_config, ablation):
    config = CLIPHand3DConfig(**{**tiny_config.to_dict(), ablation: False})
    model = CLIPHand3DModel(config)
    outputs = model(**random_batch(config))
    outputs.loss.backward()
    assert outputs.vertices_uvd.shape == (2, 778, 3)
    assert (outputs.loss_clip is None) == (ablation == "use_clip_loss")


def test_bad_inputs_are_named(tiny_model):
    pixels = torch.zeros(2, 3, 128, 128)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, 128, 128\), got \(2, 3, 64, 64\)"):
        tiny_model(pixel_values=torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"labels\['joints_uvd'\] must have shape \(2, 21, 3\), got \(2, 16, 3\)"):
        tiny_model(pixel_values=pixels, labels={"joints_uvd": torch.zeros(2, 16, 3)})
    with pytest.raises(ValueError, match=r"labels\['vertices_uvd'\] must have shape \(2, 778, 3\)"):
        tiny_model(
            pixel_values=pixels, labels={"joints_uvd": torch.zeros(2, 21, 3), "vertices_uvd": torch.zeros(2, 5, 3)}
        )
    with pytest.raises(ValueError, match=r"unknown labels \['joint_uvd'\]"):
        tiny_model(pixel_values=pixels, labels={"joint_uvd": torch.zeros(2, 21, 3)})
    with pytest.raises(ValueError, match="labels need 'joints_uvd'"):
        tiny_model(pixel_values=pixels, labels={"joints_valid": torch.ones(2, 21, dtype=torch.bool)})
    with pytest.raises(ValueError, match="second-view labels were given without pixel_values_view2"):
        tiny_model(
            pixel_values=pixels,
            labels={"joints_uvd": torch.zeros(2, 21, 3), "joints_uvd_view2": torch.zeros(2, 21, 3)},
        )


def test_unknown_inputs_are_an_error_that_names_them(tiny_model):
    # Targets passed as top-level keywords (the old contract) or misspelled inputs are never ignored.
    for name in ("joints_uvd", "pixel_value"):
        with pytest.raises(ValueError, match=rf"unknown inputs \['{name}'\].*labels=") as error:
            tiny_model(pixel_values=torch.zeros(1, 3, 128, 128), **{name: torch.zeros(1, 21, 3)})
        assert all(label in str(error.value) for label in LABEL_NAMES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mesh_widths": [64, 32]}, "mesh_widths needs one value per mesh level"),
        ({"heatmap_size": 64}, "heatmap_size"),
        ({"num_prompt_joints": 0}, "num_prompt_joints must be in 1..21"),
        ({"topology": "mano"}, "topology must be 'builtin' or 'custom'"),
        ({"level_sizes": [21, 389, 98, 778]}, "level_sizes must increase strictly"),
        ({"loss_weight_clip": -1.0}, "loss_weight_clip must be >= 0"),
        ({"loss_weight_joint_offsets": -0.5}, "loss_weight_joint_offsets must be >= 0"),
    ],
)
def test_inconsistent_config_fails_naming_the_field(tiny_config, overrides, message):
    with pytest.raises(Exception, match=message):
        CLIPHand3DConfig(**{**tiny_config.to_dict(), **overrides})


def test_set_topology_replaces_the_mesh(tiny_model, tiny_config):
    builtin = HandTopology.builtin()
    scaled = HandTopology.from_state_dict(
        {
            name: value * 2 if name.startswith("template_vertices") else value
            for name, value in builtin.to_state_dict().items()
        }
    )
    tiny_model.set_topology(scaled)
    assert torch.equal(tiny_model.mesh_regressor.topology.template(3), 2 * builtin.template_vertices[3].float())
    assert tiny_model.config.topology == "custom"
    # The config the model was built from is not changed: a model built from it later has the built-in mesh.
    assert tiny_config.topology == "builtin"
    assert torch.equal(
        CLIPHand3DModel(tiny_config).mesh_regressor.topology.template(3), builtin.template_vertices[3].float()
    )
    wrong = HandTopology.zeros((21, 98, 389, 778), 1538)
    with pytest.raises(ValueError, match="1538 faces"):
        tiny_model.set_topology(wrong)


def test_pretrained_encoders_load_from_local_folders(tmp_path, tiny_config):
    backbone = ResNetBackbone(tiny_config.backbone_config)
    backbone.save_pretrained(tmp_path / "resnet")
    text_model = CLIPTextModel(tiny_config.text_config)
    text_model.save_pretrained(tmp_path / "clip")
    config = CLIPHand3DConfig(
        **{
            **tiny_config.to_dict(),
            "backbone": str(tmp_path / "resnet"),
            "text_model_name_or_path": str(tmp_path / "clip"),
        }
    )
    model = CLIPHand3DModel(config)
    model.load_pretrained_encoders(backbone=True, text_model=True)
    for name, value in backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    for name, value in text_model.state_dict().items():
        assert torch.equal(model.text_model.state_dict()[name], value), name


def test_pretrained_encoder_mismatch_names_the_field(tmp_path, tiny_config):
    other = CLIPTextConfig(**{**tiny_config.text_config.to_dict(), "hidden_size": 64, "intermediate_size": 64})
    CLIPTextModel(other).save_pretrained(tmp_path / "clip")
    config = CLIPHand3DConfig(**{**tiny_config.to_dict(), "text_model_name_or_path": str(tmp_path / "clip")})
    with pytest.raises(ValueError, match="text_config does not match the pretrained weights"):
        CLIPHand3DModel(config).load_pretrained_encoders(backbone=False, text_model=True)


def test_predict_mesh_false_gives_the_same_joints_and_leaves_the_mesh_out(tiny_model, tiny_config):
    batch = random_batch(tiny_config)
    tiny_model.eval()
    with torch.no_grad():
        full = tiny_model(pixel_values=batch["pixel_values"])
        joints_only = tiny_model(pixel_values=batch["pixel_values"], predict_mesh=False)
    torch.testing.assert_close(joints_only.joints_uvd, full.joints_uvd)
    assert joints_only.vertices_uvd is None

    tiny_model.train()
    tiny_model.zero_grad(set_to_none=True)
    joint_labels = {"joints_uvd": batch["labels"]["joints_uvd"]}
    outputs = tiny_model(**{**batch, "labels": joint_labels}, predict_mesh=False)
    assert outputs.loss_vertices is None and outputs.loss_normal is None
    outputs.loss.backward()
    assert all(parameter.grad is None for parameter in tiny_model.mesh_regressor.parameters())
    assert tiny_model.lixel_regressor.heatmap_x.weight.grad is not None
    with pytest.raises(ValueError, match="vertex labels were given with predict_mesh=False"):
        tiny_model(**batch, predict_mesh=False)


def test_bfloat16_autocast_keeps_outputs_and_losses_in_float32(tiny_model, tiny_config):
    batch = random_batch(tiny_config, batch_size=3)
    tiny_model.eval()
    with torch.no_grad():
        full_precision = tiny_model(**batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = tiny_model(**batch)
    for name in ("joints_uvd", "vertices_uvd", "loss", "loss_joints", "loss_vertices", "loss_clip"):
        assert getattr(mixed, name).dtype == torch.float32, name
    assert mixed.logits_per_pose.dtype == torch.float32
    # bfloat16 rounds a coordinate near 31 to a multiple of 1/8; the float32 soft-argmax and anchor vertices do not.
    assert not torch.equal(mixed.joints_uvd, (mixed.joints_uvd * 8).round() / 8)
    assert not torch.equal(mixed.vertices_uvd, (mixed.vertices_uvd * 8).round() / 8)
    # The network itself runs in bfloat16 (3 significant digits), so the two agree to a small fraction of a bin.
    assert (mixed.joints_uvd - full_precision.joints_uvd).abs().max() < 0.5
    assert mixed.loss.item() == pytest.approx(full_precision.loss.item(), rel=0.05)
