"""Save/load round trips of every variant, and loading as remote code where clip_hand3d cannot be imported."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from clip_hand3d import CLIPHand3DProcessor
from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel, HandTopology
from clip_hand3d.variants import list_variants, resolve_variant
from tests.conftest import random_batch


def test_variants_are_listed():
    assert list_variants() == ["clip-hand3d-r18", "clip-hand3d-r50", "clip-hand3d-tiny"]


@pytest.mark.parametrize("variant", ["clip-hand3d-r18", "clip-hand3d-r50", "clip-hand3d-tiny"])
def test_round_trip_of_every_variant(tmp_path, variant):
    config = CLIPHand3DConfig.from_pretrained(resolve_variant(variant), with_text_model=False)
    torch.manual_seed(0)
    model = CLIPHand3DModel(config).eval()
    pixels = torch.randn(1, 3, config.image_size, config.image_size)
    with torch.no_grad():
        expected = model(pixel_values=pixels)
    model.save_pretrained(tmp_path)
    loaded = CLIPHand3DModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        actual = loaded(pixel_values=pixels)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    # Same weights; kernels may sum in another order on tensors of another memory layout: float32 round-off only.
    torch.testing.assert_close(actual.joints_uvd, expected.joints_uvd, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(actual.vertices_uvd, expected.vertices_uvd, rtol=1e-5, atol=1e-4)


def test_inference_load_drops_the_text_tower(tmp_path, tiny_model, tiny_config):
    tiny_model.eval().save_pretrained(tmp_path)
    assert any(name.startswith("text_model.") for name in load_file(tmp_path / "model.safetensors"))
    loaded = CLIPHand3DModel.from_pretrained(tmp_path, with_text_model=False).eval()
    assert loaded.text_model is None
    pixels = random_batch(tiny_config)["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(pixel_values=pixels).vertices_uvd,
            tiny_model(pixel_values=pixels).vertices_uvd,
            rtol=1e-5,
            atol=1e-4,
        )


def test_custom_topology_travels_with_the_checkpoint(tmp_path, tiny_model):
    builtin = HandTopology.builtin()
    moved = builtin.to_state_dict()
    moved["template_vertices_3"] = moved["template_vertices_3"] + 0.01
    tiny_model.set_topology(HandTopology.from_state_dict(moved))
    tiny_model.save_pretrained(tmp_path)
    loaded = CLIPHand3DModel.from_pretrained(tmp_path)
    assert loaded.config.topology == "custom"
    assert torch.equal(loaded.mesh_regressor.topology.template(3), moved["template_vertices_3"].float())


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockClipHand3D(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "clip_hand3d" or name.startswith("clip_hand3d."):
                raise ImportError("clip_hand3d is not installed here")

    sys.meta_path.insert(0, BlockClipHand3D())
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = load_file(folder + "/inputs.safetensors")
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"])
    print(json.dumps({
        "class": type(model).__module__ + "." + type(model).__name__,
        "joints_error": float((outputs.joints_uvd - inputs["joints_uvd"]).abs().max()),
        "vertices_error": float((outputs.vertices_uvd - inputs["vertices_uvd"]).abs().max()),
    }))
    """
)


def test_auto_model_loads_as_remote_code_without_the_package(tmp_path, tiny_model, tiny_config):
    tiny_model.eval().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"] == {
        "AutoConfig": "configuration_clip_hand3d.CLIPHand3DConfig",
        "AutoModel": "modeling_clip_hand3d.CLIPHand3DModel",
    }
    pixels = random_batch(tiny_config)["pixel_values"]
    with torch.no_grad():
        outputs = tiny_model(pixel_values=pixels)
    save_file(
        {"pixel_values": pixels, "joints_uvd": outputs.joints_uvd, "vertices_uvd": outputs.vertices_uvd},
        tmp_path / "inputs.safetensors",
    )
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"].startswith("transformers_modules.")
    assert report["joints_error"] < 1e-4 and report["vertices_error"] < 1e-4


def test_auto_model_resolves_with_the_package_installed(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), CLIPHand3DModel)


@pytest.mark.parametrize("variant", ["clip-hand3d-r18", "clip-hand3d-r50", "clip-hand3d-tiny"])
def test_every_variant_folder_has_a_matching_processor(variant):
    folder = resolve_variant(variant)
    config = CLIPHand3DConfig.from_pretrained(folder)
    processor = CLIPHand3DProcessor.from_pretrained(folder)
    image_processor = processor.image_processor
    assert (image_processor.image_size, image_processor.heatmap_size, image_processor.depth_size) == (
        config.image_size,
        config.heatmap_size,
        config.depth_size,
    )
    assert image_processor.depth_range == config.depth_range
    assert (processor.num_prompt_joints, processor.max_text_length) == (
        config.num_prompt_joints,
        config.max_text_length,
    )
