"""train.py's arguments: recipes, dataset SPECs and the errors that fail at start."""

import json
from pathlib import Path

import pytest

from clip_hand3d.training.arguments import parse_args
from clip_hand3d.training.data import DatasetSource, parse_dataset_spec
from clip_hand3d.training.pretraining_arguments import parse_args as parse_pretraining_args

REPO = Path(__file__).resolve().parents[2]


def test_dataset_spec_parses_every_source(tmp_path):
    spec = f"synthetic:64+freihand:{tmp_path}+rhd:{tmp_path}+stb:{tmp_path}"
    assert parse_dataset_spec(spec) == [
        DatasetSource("synthetic", num_samples=64),
        DatasetSource("freihand", path=str(tmp_path)),
        DatasetSource("rhd", path=str(tmp_path)),
        DatasetSource("stb", path=str(tmp_path)),
    ]
    assert parse_dataset_spec("synthetic") == [DatasetSource("synthetic", num_samples=2000)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imagenet:/x", "unknown set 'imagenet'"),
        ("synthetic:many", "synthetic takes a number of samples"),
        ("freihand", "freihand needs a path"),
        ("freihand:/no/such/folder", "path /no/such/folder does not exist"),
    ],
)
def test_bad_dataset_spec_is_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_dataset_spec(spec)


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown variant 'clip-hand3d-huge'.*clip-hand3d-tiny"):
        parse_args(["--config", "clip-hand3d-huge"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--train_batch_size", "0"], "--train_batch_size must be >= 1"),
        (["--learning_rate", "-1"], "--learning_rate must be > 0"),
        (["--loss_weight_joint_offsets", "-1"], "--loss_weight_joint_offsets must be >= 0"),
        (["--preprocessing_num_workers", "0"], "--preprocessing_num_workers must be >= 1"),
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        (["--no-augment", "--augment_degradations"], "--augment_degradations adds to --augment"),
        (["--init_from", "/no/such/model"], "--init_from /no/such/model: no such folder"),
        (["--stage2_minutes", "2", "--max_train_minutes", "15"], "--stage2_minutes needs --stage1_steps"),
        (["--stage2_minutes", "2", "--stage1_steps", "9"], "--stage2_minutes needs --stage1_steps and --max_train"),
        (
            ["--stage2_minutes", "15", "--stage1_steps", "9", "--max_train_minutes", "15"],
            r"--stage2_minutes must be > 0 and less than --max_train_minutes \(15.0\), got 15.0",
        ),
    ],
)
def test_bad_arguments_fail_at_start(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_args(flags)


def test_recipe_supplies_defaults_that_flags_override(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"learning_rate": 0.002, "train_batch_size": 48, "lr_scheduler": "step"}))
    args = parse_args(["--recipe", str(recipe), "--train_batch_size", "8"])
    assert (args.learning_rate, args.train_batch_size, args.lr_scheduler) == (0.002, 8, "step")
    assert args.config.endswith("clip-hand3d-tiny")


def test_recipe_with_unknown_key_is_named(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"learning_rat": 0.1}))
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rat'\]"):
        parse_args(["--recipe", str(recipe)])


@pytest.mark.parametrize("script", ["train", "pretrain"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--checkpointing_steps", "0"], "--checkpointing_steps must be >= 1"),
        (["--dataloader_num_workers", "-1"], "--dataloader_num_workers must be >= 0"),
        (["--checkpoints_total_limit", "0"], "--checkpoints_total_limit must be >= 1"),
    ],
)
def test_train_and_pretrain_share_the_run_arguments_and_their_checks(script, flags, message):
    parse = parse_args if script == "train" else parse_pretraining_args
    base = [] if script == "train" else ["--objective", "simclr"]
    assert parse([*base, "--seed", "3", "--mixed_precision", "no"]).seed == 3
    with pytest.raises(ValueError, match=message):
        parse([*base, *flags])


def test_the_readme_recipe_trains_in_native_precision_and_keeps_time_for_the_mesh():
    args = parse_args(["--recipe", str(REPO / "recipes" / "synthetic_tiny_15min.json")])
    assert (args.max_steps, args.stage1_steps, args.max_train_minutes) == (8600, 8200, 15)
    assert args.stage2_minutes == 2 and args.mixed_precision == "auto" and args.channels_last


@pytest.mark.parametrize("stage", [1, 2])
def test_the_paper_recipes_parse(stage, tmp_path):
    # Stage 2 starts from stage 1's output folder, which must exist.
    init_from = ["--init_from", str(tmp_path)] if stage == 2 else []
    args = parse_args(["--recipe", str(REPO / "recipes" / f"freihand_paper_stage{stage}.json"), *init_from])
    assert args.stage == stage and args.config.endswith("clip-hand3d-r50") and args.train_batch_size == 48
