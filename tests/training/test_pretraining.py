"""Encoder pre-training: the (weighted) NT-Xent loss, PeCLR's equivariance, LARS, the global batch over two CPU
processes, pretrain.py on the tiny variant (loss, resume), and train.py --init_from an encoder checkpoint."""

import json
import math
import shutil
import socket
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.distributed as distributed
import torch.multiprocessing as multiprocessing
from accelerate.state import AcceleratorState
from datasets import Dataset
from safetensors.torch import load_file

import pretrain
import train
from clip_hand3d.data.synthetic import load_synthetic
from clip_hand3d.data.unlabeled import UnlabeledHands, UnlabeledRow
from clip_hand3d.geometry import apply_affine
from clip_hand3d.hub import TrainingRun, model_card_values
from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.training.arguments import parse_args as parse_train_args
from clip_hand3d.training.augmentation import HandAugmentationConfig, ViewAugmentation, augmentation_affine
from clip_hand3d.training.pretraining import (
    LARS,
    EncoderInfo,
    HandEncoder,
    parameter_groups,
    pose_retrieval_ratio,
    save_encoder,
    scaled_learning_rate,
)
from clip_hand3d.training.pretraining_arguments import parse_args as parse_pretrain_args
from clip_hand3d.training.pretraining_data import ContrastivePairs, ContrastiveViews
from clip_hand3d.training.pretraining_objectives import (
    contrastive_logits,
    min_max_weights,
    normalised_view_affine,
    nt_xent_loss,
    undo_view_transform,
)
from clip_hand3d.variants import load_processor, resolve_variant

REPO = Path(__file__).resolve().parents[2]
# Four views of two pairs (view 0 of sample 0, of sample 1; view 1 of sample 0, of sample 1): e0 = (1, 0),
# e1 = (0, 1), e2 = (0.6, 0.8), e3 = (-0.8, 0.6), given unnormalised. Cosines: s01 = 0, s02 = 0.6, s03 = -0.8,
# s12 = 0.8, s13 = 0.6, s23 = 0. The positive pairs are (0, 2) and (1, 3).
VIEWS = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[3.0, 4.0], [-4.0, 3.0]]])
# One keypoint per view: k0 = (0, 0), k1 = (0, 1), k2 = (0, 0.25), k3 = (0, 0.5).
KEYPOINTS = torch.tensor([[[[0.0, 0.0]], [[0.0, 1.0]]], [[[0.0, 0.25]], [[0.0, 0.5]]]])


def test_weighted_nt_xent_against_a_hand_computed_case():
    # Distances: d01 = 1, d02 = 0.25, d03 = 0.5, d12 = 0.75, d13 = 0.5, d23 = 0.25.
    # Positive weights, min-max over the positive pairs' d+ = (0.25, 0.5): w02 = (0.5 - 0.25) / 0.25 = 1, w13 = 0.
    # Negative weights (d - min) / (max - min) over all six pairs (min 0.25, max 1): w01 = 0.75 / 0.75 = 1,
    # w03 = 0.25 / 0.75 = 1/3, w12 = 0.5 / 0.75 = 2/3, w23 = 0.
    # Logits w s / 0.5, by row (anchor) and column:
    #   row 0 (positive 2): c1 = 1 * 0 * 2 = 0, c2 = 1 * 0.6 * 2 = 1.2, c3 = 1/3 * -0.8 * 2 = -8/15
    #   row 1 (positive 3): c0 = 0, c2 = 2/3 * 0.8 * 2 = 16/15, c3 = 0 * 0.6 * 2 = 0
    #   row 2 (positive 0): c0 = 1.2, c1 = 16/15, c3 = 0 * 0 = 0
    #   row 3 (positive 1): c0 = -8/15, c1 = 0, c2 = 0
    # Losses -log softmax[positive]: l0 = log(1 + e^1.2 + e^(-8/15)) - 1.2 = 0.390614,
    # l1 = log(2 + e^(16/15)) = 1.590393, l2 = log(e^1.2 + e^(16/15) + 1) - 1.2 = 0.777657,
    # l3 = log(e^(-8/15) + 2) = 0.950362; mean 0.927257.
    logits, positives, weights = contrastive_logits(VIEWS, temperature=0.5, keypoints=KEYPOINTS, gather=False)
    inf = float("inf")
    expected_logits = torch.tensor(
        [
            [-inf, 0.0, 1.2, -8 / 15],
            [0.0, -inf, 16 / 15, 0.0],
            [1.2, 16 / 15, -inf, 0.0],
            [-8 / 15, 0.0, 0.0, -inf],
        ]
    )
    torch.testing.assert_close(logits, expected_logits)
    assert positives.tolist() == [2, 3, 0, 1]
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 1.0, 1.0, 1 / 3]))
    torch.testing.assert_close(weights[1], torch.tensor([1.0, 1.0, 2 / 3, 0.0]))
    torch.testing.assert_close(weights[3], torch.tensor([1 / 3, 0.0, 0.0, 1.0]))
    loss = nt_xent_loss(logits, positives)
    assert loss.item() == pytest.approx(0.927257, abs=1e-6)
    per_row = torch.nn.functional.cross_entropy(logits, positives, reduction="none")
    torch.testing.assert_close(per_row, torch.tensor([0.390614, 1.590393, 0.777657, 0.950362]), atol=1e-6, rtol=0)


def test_weighted_nt_xent_with_negatives_weighted_by_closeness():
    # Negative weights by the positives' formula (max - d) / (max - min): w01 = 0, w03 = 0.5 / 0.75 = 2/3,
    # w12 = 0.25 / 0.75 = 1/3, w23 = 1 (the positives' weights as above: w02 = 1, w13 = 0).
    #   row 0: c1 = 0, c2 = 1.2, c3 = 2/3 * -0.8 * 2 = -16/15 -> l0 = log(1 + e^1.2 + e^(-16/15)) - 1.2 = 0.339931
    #   row 1: c0 = 0, c2 = 1/3 * 0.8 * 2 = 8/15, c3 = 0 -> l1 = log(2 + e^(8/15)) = 1.309577
    #   row 2: c0 = 1.2, c1 = 8/15, c3 = 0 -> l2 = log(e^1.2 + e^(8/15) + 1) - 1.2 = 0.595871
    #   row 3: c0 = -16/15, c1 = 0, c2 = 0 -> l3 = log(e^(-16/15) + 2) = 0.851924; mean 0.774326.
    logits, positives, weights = contrastive_logits(
        VIEWS, temperature=0.5, keypoints=KEYPOINTS, gather=False, negative_weighting="closeness"
    )
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0.0, 1.0, 2 / 3]))
    torch.testing.assert_close(weights[1], torch.tensor([0.0, 1.0, 1 / 3, 0.0]))
    per_row = torch.nn.functional.cross_entropy(logits, positives, reduction="none")
    torch.testing.assert_close(per_row, torch.tensor([0.339931, 1.309577, 0.595871, 0.851924]), atol=1e-6, rtol=0)
    assert nt_xent_loss(logits, positives).item() == pytest.approx(0.774326, abs=1e-6)
    with pytest.raises(ValueError, match="negative_weighting must be one of"):
        contrastive_logits(VIEWS, keypoints=KEYPOINTS, gather=False, negative_weighting="far")


def test_unweighted_nt_xent_of_the_hand_case():
    # Every weight 1: row 0: c1 = 0, c2 = 1.2, c3 = -1.6 -> log(1 + e^1.2 + e^-1.6) - 1.2 = 0.308957;
    # row 1: c0 = 0, c2 = 1.6, c3 = 1.2 -> log(1 + e^1.6 + e^1.2) - 1.2 = 1.027123; rows 2, 3 by symmetry.
    logits, positives, weights = contrastive_logits(VIEWS, temperature=0.5, gather=False)
    assert weights is None
    assert nt_xent_loss(logits, positives).item() == pytest.approx((0.308957 + 1.027123) / 2, abs=1e-6)


def test_plain_nt_xent_equals_the_direct_formula():
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(2, 5, 8, generator=generator)
    logits, positives, _ = contrastive_logits(views, temperature=0.3, gather=False)
    z = torch.nn.functional.normalize(views.reshape(10, 8), dim=-1)
    similarity = [[math.exp(float(z[a] @ z[k]) / 0.3) for k in range(10)] for a in range(10)]
    losses = []
    for anchor in range(10):
        positive = (anchor + 5) % 10  # view 0 of sample i is anchor i, view 1 is anchor i + 5
        denominator = sum(similarity[anchor][k] for k in range(10) if k != anchor)
        losses.append(-math.log(similarity[anchor][positive] / denominator))
    assert nt_xent_loss(logits, positives).item() == pytest.approx(sum(losses) / 10, rel=1e-5)


def test_min_max_weights_of_equal_distances_are_one():
    torch.testing.assert_close(min_max_weights(torch.full((3,), 0.2)), torch.ones(3))
    torch.testing.assert_close(min_max_weights(torch.tensor([0.1, 0.3, 0.2])), torch.tensor([1.0, 0.0, 0.5]))
    increasing = min_max_weights(torch.tensor([0.1, 0.3, 0.2]), increasing=True)
    torch.testing.assert_close(increasing, torch.tensor([0.0, 1.0, 0.5]))


def test_undo_view_transform_against_hand_computed_points():
    # x' = R x + t, R a quarter turn [[0, -1], [1, 0]], t = (1, 0): (1, 0) -> (1, 1) and (0, 2) -> (-1, 0).
    affine = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, 0.0]])
    moved = torch.tensor([1.0, 1.0, -1.0, 0.0])
    torch.testing.assert_close(undo_view_transform(moved, affine), torch.tensor([1.0, 0.0, 0.0, 2.0]))
    # Scaled by 2 as well, x' = 2 R x + t: the rotation and translation alone are undone, or with the scale too.
    scaled = torch.tensor([[0.0, -2.0, 1.0], [2.0, 0.0, 0.0]])
    torch.testing.assert_close(undo_view_transform(moved, scaled), torch.tensor([1.0, 0.0, 0.0, 2.0]))
    torch.testing.assert_close(undo_view_transform(moved, scaled, undo_scale=True), torch.tensor([0.5, 0.0, 0.0, 1.0]))


def test_view_affine_in_normalised_crop_coordinates():
    # augmentation_affine rotates about the crop centre S/2 and shifts by shift * S: in x_n = (x - S/2) / (S/2)
    # that is x_n' = R x_n + 2 shift.
    view = ViewAugmentation(rotation_degrees=30.0, shift=(0.1, -0.05))
    normalised = normalised_view_affine(torch.from_numpy(augmentation_affine(view, 128)), 128)
    angle = math.radians(30.0)
    expected = [[math.cos(angle), -math.sin(angle), 0.2], [math.sin(angle), math.cos(angle), -0.1]]
    torch.testing.assert_close(normalised, torch.tensor(expected, dtype=torch.float64))


def test_undone_projection_of_a_rotated_crop_equals_the_unrotated_ones(tiny_config):
    """An exactly equivariant map (a bright spot's position in the crop, as one 2D point): its value on a rotated and
    shifted view, undone by the view's affine, is its value on the un-augmented crop."""
    processor = load_processor("clip-hand3d-tiny", tiny_config).image_processor
    yy, xx = np.mgrid[0:160, 0:160]
    spot = np.exp(-((xx - 95.0) ** 2 + (yy - 60.0) ** 2) / (2 * 3.0**2))
    image = PIL.Image.fromarray(np.repeat((spot * 255).astype(np.uint8)[..., None], 3, axis=2))
    row = UnlabeledRow(index=0, image=image, box=np.array([20.0, 20.0, 140.0, 140.0]))
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)

    def spot_position(pixels: np.ndarray) -> torch.Tensor:
        grey = (pixels.transpose(1, 2, 0) * std + mean).mean(axis=2).clip(0, None) ** 4
        size = grey.shape[0]
        x, y = (grey * np.mgrid[0:size, 0:size][::-1]).reshape(2, -1).sum(axis=1) / grey.sum()
        return torch.tensor([x - size / 2, y - size / 2]) / (size / 2)

    still = ContrastiveViews(processor, HandAugmentationConfig.eval())
    image, crop_affine = still.base_crop(row)
    reference = spot_position(still.view(image, crop_affine, np.random.default_rng(0))[0])
    # The spot's crop position, by the crop's own transform: (95, 60) in a 1.3 x 120 px crop of 128 px around (80, 80).
    expected = (apply_affine(np.array([[95.0, 60.0]]), crop_affine)[0] - 64) / 64
    torch.testing.assert_close(reference, torch.tensor(expected), atol=0.01, rtol=0)
    moving = ContrastiveViews(
        processor, HandAugmentationConfig(rotation_degrees=45, scale_range=(1.0, 1.0), shift_fraction=0.1)
    )
    for seed in range(3):
        pixels, view_affine = moving.view(image, crop_affine, np.random.default_rng(seed))
        moved = spot_position(pixels)
        assert (moved - reference).abs().max() > 0.05  # the view did move the spot
        undone = undo_view_transform(moved, torch.from_numpy(view_affine).double())
        torch.testing.assert_close(undone, reference, atol=0.01, rtol=0)


def test_lars_against_a_hand_computed_step():
    # w = (3, 4), |w| = 5; g = (0.6, 0.8); with weight decay 0.1: g + 0.1 w = (0.9, 1.2), norm 1.5; trust ratio
    # 0.001 * 5 / 1.5 = 1/300; inner SGD (lr 1) steps by (0.9, 1.2) / 300 = (0.003, 0.004). The bias (a group without
    # LARS) steps by its gradient as it is.
    weight = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    bias = torch.nn.Parameter(torch.tensor([1.0]))
    groups = [
        {"params": [weight], "weight_decay": 0.1, "lars": True},
        {"params": [bias], "weight_decay": 0.0, "lars": False},
    ]
    optimizer = LARS(torch.optim.SGD(groups, lr=1.0), trust_coefficient=1e-3)
    assert optimizer.optimizer.param_groups[0]["weight_decay"] == 0.0  # applied by LARS, not twice
    weight.grad = torch.tensor([[0.6, 0.8]])
    bias.grad = torch.tensor([0.5])
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([[2.997, 3.996]]))
    torch.testing.assert_close(bias.detach(), torch.tensor([0.5]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert [group["lr"] for group in optimizer.optimizer.param_groups] == [0.5, 0.5]
    state = optimizer.state_dict()
    assert state["param_groups"][0]["lars_weight_decay"] == 0.1
    optimizer.load_state_dict(state)
    assert optimizer.param_groups is optimizer.optimizer.param_groups
    assert scheduler.get_last_lr() == [0.5, 0.5]


def test_parameter_groups_leave_biases_and_norms_without_decay(tiny_config):
    encoder = HandEncoder(tiny_config)
    decayed, plain = parameter_groups(encoder, 1e-6)
    assert decayed["weight_decay"] == 1e-6 and plain["weight_decay"] == 0.0 and not plain["lars"]
    assert all(parameter.dim() > 1 for parameter in decayed["params"])
    head = encoder.projection_head.layers
    plain_ids = {id(parameter) for parameter in plain["params"]}
    assert {id(head[0].bias), id(head[1].weight), id(head[1].bias)} <= plain_ids
    assert encoder.feature_size == 256 and head[0].in_features == 256 and head[3].out_features == 128


WORLD_SIZE, LOCAL_BATCH, DIM = 2, 3, 6


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(2, WORLD_SIZE * LOCAL_BATCH, DIM, generator=generator)
    keypoints = torch.rand(2, WORLD_SIZE * LOCAL_BATCH, 21, 2, generator=generator)
    return views, keypoints


def run_rank(rank: int, port: int, results) -> None:
    torch.set_num_threads(1)
    distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    views, keypoints = global_batch()
    rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    local_views = views[:, rows].clone().requires_grad_(True)
    logits, positives, _ = contrastive_logits(local_views, 0.5, keypoints[:, rows], gather=True)
    loss = nt_xent_loss(logits, positives)
    loss.backward()
    results[rank] = (loss.detach(), logits.detach(), positives, local_views.grad)
    distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_weighted_nt_xent_over_two_processes_equals_the_global_batch_in_one_process():
    manager = multiprocessing.Manager()
    results = manager.dict()
    # Forked (as DataLoader workers are), the processes start with this one's imports instead of importing anew.
    multiprocessing.start_processes(
        run_rank, args=(free_port(), results), nprocs=WORLD_SIZE, join=True, start_method="fork"
    )

    views, keypoints = global_batch()
    views.requires_grad_(True)
    logits, positives, _ = contrastive_logits(views, 0.5, keypoints, gather=False)
    per_anchor = torch.nn.functional.cross_entropy(logits, positives, reduction="none").reshape(2, -1)
    total = 0
    for rank in range(WORLD_SIZE):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        loss, rank_logits, rank_positives, _ = results[rank]
        # The rank's anchors are its rows of each view; their logits are those rows of the global batch's.
        torch.testing.assert_close(rank_logits, logits.reshape(2, -1, logits.shape[1])[:, rows].reshape(-1, 12))
        assert torch.equal(rank_positives, positives.reshape(2, -1)[:, rows].reshape(-1))
        rank_loss = per_anchor[:, rows].mean()
        torch.testing.assert_close(loss, rank_loss.detach())
        total = total + rank_loss
    torch.testing.assert_close(total / WORLD_SIZE, nt_xent_loss(logits, positives).detach())
    total.backward()
    for rank in range(WORLD_SIZE):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(results[rank][3], views.grad[:, rows])


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """pretrain.main runs in this process: each run gets its own Accelerate state (see test_train.py)."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def synthetic_pairs(tmp_path_factory, tiny_config) -> str:
    """A HandCLR pairs dataset of synthetic:16, mined (in this test only) from the labels: the crop-normalised
    projected joints, the 3 nearest other rows by mean joint distance."""
    rows = load_synthetic(16, image_size=128).with_format("numpy", columns=["joints_uv", "box", "is_left"])
    processor = load_processor("clip-hand3d-tiny", tiny_config).image_processor
    keypoints = np.stack(
        [
            apply_affine(row["joints_uv"], processor.crop_transform(row["box"], 128, 128, bool(row["is_left"]))) / 128
            for row in rows
        ]
    )
    distances = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1).mean(axis=-1)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :3]
    folder = tmp_path_factory.mktemp("pairs")
    Dataset.from_dict(
        {
            "index": list(range(16)),
            "neighbors": neighbours.tolist(),
            "distances": np.take_along_axis(distances, neighbours, axis=1).tolist(),
            "keypoints_2d": keypoints.astype(np.float32).tolist(),
        }
    ).save_to_disk(folder)
    return str(folder)


def pretrain_args(output_dir, *extra: str) -> list[str]:
    return [
        "--config", "clip-hand3d-tiny",
        "--dataset", "synthetic:16",
        "--train_batch_size", "4",
        "--max_steps", "4",
        "--checkpointing_steps", "2",
        "--logging_steps", "1",
        "--learning_rate", "1e-3",
        "--lr_scheduler", "constant",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def test_a_few_pretraining_steps_lower_the_loss(tmp_path):
    result = pretrain.main(pretrain_args(tmp_path, "--objective", "simclr", "--max_steps", "6"))
    losses = [record["loss"] for record in json.loads((tmp_path / "training_curve.json").read_text())]
    assert len(losses) == 6 and result["steps"] == 6
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    info = json.loads((tmp_path / "encoder" / "encoder_config.json").read_text())
    assert info["objective"] == "simclr" and info["steps"] == 6 and not info["equivariance"]
    assert info["config_name"] == "clip-hand3d-tiny" and info["projection"] == [256, 512, 128]
    assert info["initialized_from"] == "random init"


def test_resumed_handclr_pretraining_reaches_the_weights_of_an_uninterrupted_run(tmp_path, synthetic_pairs):
    arguments = pretrain_args(tmp_path, "--pairs", synthetic_pairs, "--num_positive_candidates", "2")
    pretrain.main(arguments)
    uninterrupted = load_file(tmp_path / "encoder" / "backbone.safetensors")
    info = json.loads((tmp_path / "encoder" / "encoder_config.json").read_text())
    assert info["objective"] == "handclr" and info["steps"] == 4 and info["equivariance"]
    assert info["negative_weighting"] == "distance"
    shutil.rmtree(tmp_path / "checkpoint-4")
    shutil.rmtree(tmp_path / "encoder")
    AcceleratorState._reset_state(reset_partial_state=True)
    pretrain.main(arguments + ["--resume_from_checkpoint", "latest"])
    resumed = load_file(tmp_path / "encoder" / "backbone.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)


def test_handclr_needs_pairs():
    with pytest.raises(ValueError, match="--objective handclr needs --pairs"):
        pretrain.main(["--objective", "handclr"])


def encoder_checkpoint(folder, config: CLIPHand3DConfig, name: str = "clip-hand3d-tiny"):
    torch.manual_seed(1)
    encoder = HandEncoder(config)
    info = EncoderInfo(name, config.backbone_config.to_dict(), "handclr", 7, "synthetic:16")
    save_encoder(encoder, folder, info)
    return encoder


def test_init_from_an_encoder_starts_the_backbone_from_it(tmp_path, tiny_config):
    train.Accelerator(cpu=True)  # train.py's logger needs Accelerate's state
    encoder = encoder_checkpoint(tmp_path / "encoder", tiny_config)
    args = parse_train_args(["--config", "clip-hand3d-tiny", "--init_from", str(tmp_path / "encoder")])
    model = train.build_model(args, train.build_config(args))
    assert isinstance(model, CLIPHand3DModel)
    for name, value in encoder.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert train.model_source(args) == resolve_variant("clip-hand3d-tiny")
    # The model card names the encoder.
    model.save_pretrained(tmp_path / "model")
    run = TrainingRun("clip-hand3d-tiny", "synthetic:16", "synthetic:16", 2, "none", 3, "train.py", None)
    run = TrainingRun(**{**run.__dict__, "encoder_init": train.encoder_description(args)})
    backbone = model_card_values(tmp_path / "model", run, {})["backbone"]
    assert backbone.startswith(f"handclr pre-training of {tmp_path / 'encoder'} (7 steps on synthetic:16")


def test_init_from_an_encoder_of_another_variant_names_the_shapes(tmp_path, tiny_config):
    train.Accelerator(cpu=True)
    r18 = CLIPHand3DConfig.from_pretrained(resolve_variant("clip-hand3d-r18"))
    encoder_checkpoint(tmp_path / "encoder", r18, name="clip-hand3d-r18")
    args = parse_train_args(["--config", "clip-hand3d-tiny", "--init_from", str(tmp_path / "encoder")])
    with pytest.raises(ValueError) as error:
        train.build_model(args, train.build_config(args))
    message = str(error.value)
    assert f"the encoder {tmp_path / 'encoder'} (clip-hand3d-r18, layer_type basic" in message
    assert "does not fit the backbone of --config clip-hand3d-tiny (layer_type basic, embedding_size 32" in message
    assert "embedder.embedder.convolution.weight: (64, 3, 7, 7) in the encoder, (32, 3, 7, 7) in --config" in message


@pytest.mark.parametrize("recipe", ["handclr_tiny_cpu", "peclr_tiny_cpu", "simclr_tiny_cpu", "handclr_r50_paper"])
def test_recipes_parse(recipe):
    pairs = ["--pairs", "outputs/pairs"] if recipe.startswith("handclr") else []
    args = parse_pretrain_args(["--recipe", str(REPO / "recipes" / f"{recipe}.json"), *pairs])
    assert args.objective == recipe.split("_")[0]
    assert args.equivariance == (args.objective != "simclr") and args.temperature == 0.5
    if recipe == "handclr_r50_paper":
        # ResNet-50 from ImageNet on 128 px crops, batch 8192, Adam in LARS at 1e-4 x sqrt(8192), 10 warm-up epochs.
        assert args.pretrained_backbone and args.image_size == 128 and args.global_batch_size == 8192
        assert scaled_learning_rate(args.learning_rate, 8192, args.lr_scaling) == pytest.approx(9.05e-3, rel=1e-3)
        assert (args.optimizer, args.weight_decay, args.lr_warmup_epochs, args.num_epochs) == (
            "lars_adam",
            1e-6,
            10,
            100,
        )
        assert args.mixed_precision == "fp16" and args.rotation_degrees == 45


def test_a_nan_loss_skips_the_step_and_repeated_ones_stop_the_run(tmp_path, monkeypatch, caplog):
    original_forward = HandEncoder.forward
    calls = {"count": 0, "poison_from": None}

    def forward(self, pixel_values):
        calls["count"] += 1
        projections = original_forward(self, pixel_values)
        poisoned = calls["count"] == 1 or (calls["poison_from"] is not None and calls["count"] >= calls["poison_from"])
        return projections * float("nan") if poisoned else projections

    monkeypatch.setattr(HandEncoder, "forward", forward)
    result = pretrain.main(pretrain_args(tmp_path, "--objective", "simclr", "--max_steps", "2"))
    assert result["steps"] == 2 and calls["count"] == 3
    assert "non-finite loss at step 0: step skipped (1 in a row)" in caplog.text
    AcceleratorState._reset_state(reset_partial_state=True)
    calls.update(count=0, poison_from=2)
    with pytest.raises(RuntimeError, match="NaN or infinite for 2 steps in a row"):
        pretrain.main(pretrain_args(tmp_path / "again", "--objective", "simclr", "--max_consecutive_nan_steps", "2"))


def test_global_batch_size_is_split_over_processes_and_accumulation():
    args = parse_pretrain_args(["--objective", "simclr", "--global_batch_size", "8192"])
    assert pretrain.per_process_batch_size(args, 8) == 1024
    args.gradient_accumulation_steps = 2
    assert pretrain.per_process_batch_size(args, 8) == 512
    with pytest.raises(ValueError, match="--global_batch_size 8192 is not divisible by 3 processes x 2 accumulation"):
        pretrain.per_process_batch_size(args, 3)


def test_a_neighbour_without_keypoints_is_named(tiny_config):
    pool = UnlabeledHands(Dataset.from_dict({"image": [PIL.Image.new("RGB", (8, 8))] * 3}), name="pool")
    pairs = Dataset.from_dict(
        {
            "index": [0, 1],
            "neighbors": [[2], [0]],
            "distances": [[0.1], [0.1]],
            "keypoints_2d": [[[0.5, 0.5]] * 21] * 2,
        }
    )
    views = ContrastiveViews(load_processor("clip-hand3d-tiny", tiny_config).image_processor, HandAugmentationConfig())
    samples = ContrastivePairs(pool, views, pairs)
    assert len(samples) == 2 and samples[1]["positive_index"] == 0
    with pytest.raises(ValueError, match="row 0's neighbour 2 has no row \\(no keypoints\\) in the pairs dataset"):
        samples[0]


def test_pose_retrieval_ratio_is_zero_for_pose_features_and_about_one_for_noise():
    generator = torch.Generator().manual_seed(0)
    # Poses in two clusters: features that are the poses retrieve a row of the same cluster, noise does not.
    centres = torch.rand(2, 21, 2, generator=generator)
    keypoints = centres[torch.arange(64) % 2] + 0.01 * torch.randn(64, 21, 2, generator=generator)
    exact = pose_retrieval_ratio(keypoints.flatten(1) - keypoints.flatten(1).mean(0), keypoints)
    assert exact["ratio"] < 0.2 and exact["retrieved"] < exact["random"]
    noise = pose_retrieval_ratio(torch.randn(64, 16, generator=generator), keypoints)
    assert 0.6 < noise["ratio"] < 1.4
