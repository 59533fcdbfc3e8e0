"""Encoder pre-training (`pretrain.py`): the encoder (CLIP-Hand3D's ResNet backbone + a projection head), the
encoder checkpoint that `train.py --init_from` starts CLIP-Hand3D's backbone from, and LARS.

An encoder checkpoint is a folder of
    encoder_config.json: `ENCODER_FORMAT`, the variant and its backbone config, the objective, steps, data and
        projection sizes (what the model card of a fine-tuned model names);
    backbone.safetensors: the backbone's weights, named as in `CLIPHand3DModel.backbone`;
    projection_head.safetensors: the projection head's (not used by fine-tuning).
"""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoBackbone

from clip_hand3d.modeling import CLIPHand3DConfig

ENCODER_FORMAT = "clip-hand3d-encoder"
ENCODER_CONFIG_FILE = "encoder_config.json"
BACKBONE_WEIGHTS_FILE = "backbone.safetensors"
HEAD_WEIGHTS_FILE = "projection_head.safetensors"


class ProjectionHead(nn.Module):
    """in_features -> hidden (BatchNorm, ReLU) -> out_features: SimCLR's head (HandCLR: 2048 -> 512 -> 128)."""

    def __init__(self, in_features: int, hidden_features: int = 512, out_features: int = 128):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, out_features),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class HandEncoder(nn.Module):
    """The backbone of `CLIPHand3DModel` for `config` (same module, same weight names), its last feature map
    average-pooled (2048 channels for ResNet-50, the variant's own width otherwise) and a `ProjectionHead`."""

    def __init__(self, config: CLIPHand3DConfig, hidden_features: int = 512, out_features: int = 128):
        super().__init__()
        self.backbone = AutoBackbone.from_config(config.backbone_config)
        self.feature_size = int(self.backbone.num_features[-1])
        self.projection_head = ProjectionHead(self.feature_size, hidden_features, out_features)

    def pooled_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) crops -> (B, feature_size), the mean of the last feature map."""
        return self.backbone(pixel_values).feature_maps[-1].mean(dim=(2, 3))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) crops -> (B, out_features) projections (not normalised)."""
        return self.projection_head(self.pooled_features(pixel_values))


@dataclass
class EncoderInfo:
    """The `encoder_config.json` of an encoder checkpoint.

    Attributes:
        config_name: the variant (or config folder) the backbone is of, e.g. "clip-hand3d-tiny".
        backbone_config: that backbone's ResNet config, as a dict.
        objective: handclr, peclr or simclr.
        steps: optimiser steps of the pre-training.
        dataset: the unlabeled data it was pre-trained on.
        initialized_from: where the backbone's weights started ("random init" or a name such as
            "microsoft/resnet-50").
        image_size: side of the crops it was pre-trained on.
        projection: the head's sizes (in, hidden, out).
        equivariance: whether the view's similarity was undone on the projections (PeCLR).
        temperature: NT-Xent's temperature.
        negative_weighting: HandCLR's negative weights ("distance" or "closeness"); None for the other objectives.
    """

    config_name: str
    backbone_config: dict
    objective: str
    steps: int
    dataset: str
    initialized_from: str = "random init"
    image_size: int = 128
    projection: list[int] = field(default_factory=lambda: [2048, 512, 128])
    equivariance: bool = False
    temperature: float = 0.5
    negative_weighting: str | None = None
    format: str = ENCODER_FORMAT

    def describe(self, path: str | Path | None = None) -> str:
        """One line for a model card: "handclr pre-training (1000 steps on synthetic:2000, from random init) ..."."""
        where = f" of {path}" if path is not None else ""
        return (
            f"{self.objective} pre-training{where} ({self.steps} steps on {self.dataset}, {self.image_size} px "
            f"crops, from {self.initialized_from})"
        )


def is_encoder_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a folder written by `save_encoder` (it has `encoder_config.json`)."""
    return (Path(path) / ENCODER_CONFIG_FILE).is_file()


def save_encoder(encoder: HandEncoder, output_dir: str | Path, info: EncoderInfo) -> Path:
    """Write the encoder checkpoint (see the module docstring) to `output_dir`; returns it."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_file(_contiguous(encoder.backbone.state_dict()), output_dir / BACKBONE_WEIGHTS_FILE)
    save_file(_contiguous(encoder.projection_head.state_dict()), output_dir / HEAD_WEIGHTS_FILE)
    (output_dir / ENCODER_CONFIG_FILE).write_text(json.dumps(asdict(info), indent=2))
    return output_dir


def read_encoder_info(path: str | Path) -> EncoderInfo:
    """The `EncoderInfo` of an encoder checkpoint; ValueError naming the folder when it is none."""
    config_file = Path(path) / ENCODER_CONFIG_FILE
    if not config_file.is_file():
        raise ValueError(f"{path} is not an encoder checkpoint (no {ENCODER_CONFIG_FILE}); pretrain.py writes them")
    values = json.loads(config_file.read_text())
    if values.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{config_file}: format {values.get('format')!r}, expected {ENCODER_FORMAT!r}")
    return EncoderInfo(**values)


def load_encoder_backbone(backbone: nn.Module, path: str | Path, target_name: str = "this model") -> EncoderInfo:
    """Copy the backbone weights of the encoder checkpoint `path` into `backbone` (e.g. `CLIPHand3DModel.backbone`).

    Raises ValueError naming the weights and their shapes when the checkpoint's backbone is not this one (another
    variant), before anything is copied. Returns the checkpoint's `EncoderInfo`.
    """
    info = read_encoder_info(path)
    weights = load_file(Path(path) / BACKBONE_WEIGHTS_FILE)
    expected = backbone.state_dict()
    mismatched = [
        f"{name}: {tuple(weights[name].shape)} in the encoder, {tuple(value.shape)} in {target_name}"
        for name, value in expected.items()
        if name in weights and weights[name].shape != value.shape
    ]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if mismatched or missing or unexpected:
        problems = []
        if mismatched:
            problems.append(f"{len(mismatched)} weights differ in shape, e.g. " + "; ".join(mismatched[:3]))
        if missing or unexpected:
            problems.append(
                f"{len(missing)} weights missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
            )
        raise ValueError(
            f"the encoder {path} ({info.config_name}, {_backbone_summary(info.backbone_config)}) does not fit the "
            f"backbone of {target_name} ({_backbone_summary(backbone.config.to_dict())}): " + "; ".join(problems)
        )
    backbone.load_state_dict(weights)
    return info


def _backbone_summary(backbone_config: dict) -> str:
    names = ("layer_type", "embedding_size", "hidden_sizes", "depths")
    return ", ".join(f"{name} {backbone_config.get(name)}" for name in names)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().contiguous() for name, value in state.items()}


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with `weight_decay` and LARS adaptation, and biases and norm parameters (every
    parameter of at most one dimension) with neither."""
    decayed, plain = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (plain if parameter.dim() <= 1 else decayed).append(parameter)
    return [
        {"params": decayed, "weight_decay": weight_decay, "lars": True},
        {"params": plain, "weight_decay": 0.0, "lars": False},
    ]


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling around another optimizer (You et al., 2017; SimCLR and PeCLR wrap Adam).

    Before each step of the inner optimizer, every parameter of a group with `lars=True` (the default) gets its
    group's weight decay added to its gradient, g <- g + wd w, and the gradient is scaled by the trust ratio
    `trust_coefficient * |w| / |g|` (1 when either norm is 0). The inner optimizer is built without weight decay on
    those groups (LARS applies it); groups with `lars=False` (biases, norms) pass through unchanged. The wrapper
    shares the inner optimizer's `param_groups` and `state`, so learning-rate schedulers and checkpoints see one
    optimizer.

    Args:
        optimizer: the inner optimizer, e.g. `torch.optim.Adam(parameter_groups(model, wd), lr=...)`; each group's
            `weight_decay` is moved to LARS.
        trust_coefficient: eta.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, trust_coefficient: float = 1e-3):
        if trust_coefficient <= 0:
            raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")
        for group in optimizer.param_groups:
            group.setdefault("lars", True)
            if group["lars"]:
                group["lars_weight_decay"] = group.get("weight_decay", 0.0)
                group["weight_decay"] = 0.0
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.optimizer = optimizer
        self.trust_coefficient = trust_coefficient
        self._share()

    def _share(self) -> None:
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if not group["lars"]:
                continue
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad.add(parameter, alpha=group["lars_weight_decay"])
                weight_norm, gradient_norm = parameter.norm(), gradient.norm()
                trust = torch.where(
                    (weight_norm > 0) & (gradient_norm > 0),
                    self.trust_coefficient * weight_norm / gradient_norm,
                    torch.ones_like(weight_norm),
                )
                parameter.grad.copy_(gradient * trust)
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)
        self._share()


def scaled_learning_rate(learning_rate: float, global_batch_size: int, scaling: str) -> float:
    """The base rate scaled for the global batch: x sqrt(batch) (HandCLR: 1e-4 x sqrt(8192)), x batch / 256
    (linear, SimCLR's), or as it is (none)."""
    if scaling == "sqrt":
        return learning_rate * math.sqrt(global_batch_size)
    if scaling == "linear":
        return learning_rate * global_batch_size / 256
    if scaling == "none":
        return learning_rate
    raise ValueError(f"unknown learning rate scaling {scaling!r}: use sqrt, linear or none")


@torch.no_grad()
def pose_retrieval_ratio(features: torch.Tensor, keypoints: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """How well an encoder's features retrieve similar poses (an evaluation probe; it reads labels, so pre-training
    never calls it): each row's nearest other row by cosine similarity of `features` (N, C), and the mean 2D
    keypoint distance of those pairs (`keypoints` (N, J, 2), normalised to the crop) against random pairs of
    distinct rows. `ratio` = retrieved / random: 0 for perfect pose retrieval, about 1 for features blind to pose."""
    if features.shape[0] != keypoints.shape[0] or features.shape[0] < 2:
        raise ValueError(
            f"features ({tuple(features.shape)}) and keypoints ({tuple(keypoints.shape)}) need the same number of "
            "rows, at least two"
        )
    normalised = torch.nn.functional.normalize(features.float(), dim=-1)
    similarity = normalised @ normalised.T
    similarity.fill_diagonal_(float("-inf"))
    nearest = similarity.argmax(dim=1)
    rows = torch.arange(features.shape[0])
    distance = (keypoints[rows] - keypoints[nearest]).norm(dim=-1).mean(dim=-1)
    generator = torch.Generator().manual_seed(seed)
    others = (rows + torch.randint(1, features.shape[0], (features.shape[0],), generator=generator)) % len(rows)
    random_distance = (keypoints[rows] - keypoints[others]).norm(dim=-1).mean(dim=-1)
    retrieved, random = distance.mean().item(), random_distance.mean().item()
    return {"retrieved": retrieved, "random": random, "ratio": retrieved / random if random > 0 else float("nan")}
