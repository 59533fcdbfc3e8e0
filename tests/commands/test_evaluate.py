"""`clip-hand3d evaluate`: evaluate a saved model, write the scores and FreiHAND's submission format."""

import json

import numpy as np
import pytest

from clip_hand3d.commands import main
from clip_hand3d.modeling import CLIPHand3DConfig
from clip_hand3d.variants import load_processor, resolve_variant


def load_r18_config() -> CLIPHand3DConfig:
    return CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-r18"))


def test_evaluate_prints_writes_scores_and_freihand_predictions(tmp_path, tiny_model, capsys):
    tiny_model.save_pretrained(tmp_path / "model")
    load_processor("clip-hand3d-tiny", tiny_model.config).save_pretrained(tmp_path / "model")
    main(
        [
            "evaluate", "--model", str(tmp_path / "model"), "--dataset", "synthetic", "--eval-samples", "4",
            "--batch-size", "2", "--json", str(tmp_path / "scores.json"), "--freihand-pred", str(tmp_path / "pred.json"),
            "--plots", str(tmp_path / "plots"),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert "PA-MPJPE (mm)" in printed and f"{scores['pa_mpjpe']:.4g}" in printed
    assert scores["num_samples"] == 4 and scores["pa_mpjpe"] > 0
    joints, vertices = json.loads((tmp_path / "pred.json").read_text())
    assert np.asarray(joints).shape == (4, 21, 3) and np.asarray(vertices).shape == (4, 778, 3)
    assert np.all(np.asarray(joints)[:, :, 2] > 0), "predictions are placed at the camera-frame root"
    assert (tmp_path / "plots" / "pck_curve.png").is_file()


def test_evaluate_with_unknown_dataset_names_it(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    load_processor("clip-hand3d-tiny", tiny_model.config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown set 'coco'"):
        main(["evaluate", "--model", str(tmp_path), "--dataset", "coco:/x"])


def test_evaluate_a_model_saved_without_its_processor_says_so(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no processor_config.json: save the processor with the model"):
        main(["evaluate", "--model", str(tmp_path), "--dataset", "synthetic"])


def test_evaluate_refuses_a_processor_that_does_not_match_the_model(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    load_processor("clip-hand3d-r18", load_r18_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has image_size=224, its model config image_size=128"):
        main(["evaluate", "--model", str(tmp_path), "--dataset", "synthetic"])
