"""CLIP-Hand3D: 3D hand pose and mesh from one RGB image, with CLIP-style pose-text contrastive supervision."""

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoBackbone, CLIPTextModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_clip_hand3d import PYRAMID_FEATURES, CLIPHand3DConfig
from .hand_topology import HandTopology
from .lixel_regressor import LixelJointRegressor
from .losses import LABEL_NAMES, VIEW2_SUFFIX, CLIPHand3DLoss, pose_text_logits
from .mesh_regressor import JointFeatureEncoder, MeshRegressor, joint_heatmap_planes
from .pose_text_matching import PoseTextMatcher

# The inputs of `forward` besides `labels` (see `LABEL_NAMES` for those) and `predict_mesh`.
INPUT_NAMES = ("pixel_values", "pixel_values" + VIEW2_SUFFIX, "text_input_ids", "text_attention_mask")


@dataclass
class CLIPHand3DOutput(ModelOutput):
    r"""
    Output of [`CLIPHand3DModel`]. Coordinates are in the uvd space of the input crop: u, v in heatmap pixels
    (0 .. heatmap_size - 1), d in depth bins relative to the root (depth_size / 2 is the root's depth).

    loss (`torch.FloatTensor` of shape `()`): total training loss, when targets are given.
    joints_uvd (`torch.FloatTensor` of shape `(batch_size, num_joints, 3)`): predicted joints.
    vertices_uvd (`torch.FloatTensor` of shape `(batch_size, num_vertices, 3)`): predicted mesh vertices.
    heatmaps (`tuple(torch.FloatTensor)`): the 1D lixel heatmaps (probabilities) along u, v and d, each
        `(batch_size, num_joints, length)`.
    pose_embeds (`torch.FloatTensor` of shape `(batch_size, 3, projection_dim)`): normalised pose-aware features
        per axis, when text inputs are given.
    text_embeds (`torch.FloatTensor` of shape `(batch_size, 3, projection_dim)`): normalised text features per axis.
    logits_per_pose (`torch.FloatTensor` of shape `(3, batch_size, global_batch_size)`): the logit matrices
        M_lr, M_tb, M_nf.
    faces (`torch.LongTensor` of shape `(num_faces, 3)`): the mesh triangles, for post-processing.
    loss_* (`torch.FloatTensor` of shape `()`): each loss term before weighting.
    """

    loss: torch.FloatTensor | None = None
    joints_uvd: torch.FloatTensor | None = None
    vertices_uvd: torch.FloatTensor | None = None
    heatmaps: tuple[torch.FloatTensor, ...] | None = None
    pose_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    logits_per_pose: torch.FloatTensor | None = None
    faces: torch.LongTensor | None = None
    loss_joints: torch.FloatTensor | None = None
    loss_joint_offsets: torch.FloatTensor | None = None
    loss_vertices: torch.FloatTensor | None = None
    loss_normal: torch.FloatTensor | None = None
    loss_edge: torch.FloatTensor | None = None
    loss_consistency_2d: torch.FloatTensor | None = None
    loss_consistency_3d: torch.FloatTensor | None = None
    loss_clip: torch.FloatTensor | None = None


class CLIPHand3DPreTrainedModel(PreTrainedModel):
    config_class = CLIPHand3DConfig
    base_model_prefix = "clip_hand3d"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    # A model loaded with `with_text_model=False` ignores the frozen text tower stored in the checkpoint.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\."]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, PoseTextMatcher):
            init.constant_(module.logit_scales, module.logit_scale_init_value)
        elif isinstance(module, MeshRegressor):
            for residual in module.upsample_residuals if module.use_sparse_to_dense else [module.dense_residual]:
                init.zeros_(residual)


class CLIPHand3DModel(CLIPHand3DPreTrainedModel):
    """ResNet encoder -> lixel joint regressor -> coarse-to-fine mesh regressor, with a frozen CLIP text tower and
    per-axis text transformers that serve the contrastive loss during training only."""

    def __init__(self, config: CLIPHand3DConfig):
        super().__init__(config)
        self.backbone = AutoBackbone.from_config(config.backbone_config)
        channels = list(self.backbone.num_features)
        self.lixel_regressor = LixelJointRegressor(
            channels[4], config.joint_deconv_channels, config.num_joints, config.depth_size
        )
        self.joint_feature_encoder = JointFeatureEncoder(
            config.num_joints, channels[0], config.joint_plane_size, config.mesh_widths[0]
        )
        topology = (
            HandTopology.builtin()
            if config.topology == "builtin"
            else HandTopology.zeros(config.level_sizes, config.num_faces)
        )
        self._check_topology(topology)
        # Pyramid levels F4, F3, F2, F1 feed mesh levels 0, 1, 2, 3 (coarse mesh, coarse features).
        self.mesh_regressor = MeshRegressor(config, topology, channels[4:0:-1])
        self.criterion = CLIPHand3DLoss(config)
        self.pose_text_matcher = None
        self.text_model = None
        if config.use_clip_loss:
            self.pose_text_matcher = PoseTextMatcher(
                config.num_joints,
                (config.heatmap_size, config.heatmap_size, config.depth_size),
                config.text_config.hidden_size,
                config.text_transformer_layers,
                config.text_transformer_heads,
                config.projection_dim,
                config.logit_scale_init_value,
            )
            if config.with_text_model:
                self.text_model = CLIPTextModel(config.text_config)
                self.text_model.requires_grad_(False)
        self.post_init()

    def _check_topology(self, topology: HandTopology) -> None:
        sizes = [vertices.shape[0] for vertices in topology.template_vertices]
        if sizes != list(self.config.level_sizes) or topology.faces.shape[0] != self.config.num_faces:
            raise ValueError(
                f"topology has level sizes {sizes} and {topology.faces.shape[0]} faces, the config expects "
                f"level_sizes={self.config.level_sizes} and num_faces={self.config.num_faces}"
            )

    def set_topology(self, topology: HandTopology) -> None:
        """Use `topology` (e.g. one built from MANO_RIGHT.pkl) for the mesh; saved with the model from now on.

        The model gets its own copy of its config, marked "custom": a model built later from the config object this
        one was built from keeps the built-in topology (a "custom" config builds an empty one, for from_pretrained
        to fill)."""
        self._check_topology(topology)
        self.mesh_regressor.topology.copy_from(topology)
        self.config = copy.deepcopy(self.config)
        self.config.topology = "custom"

    @property
    def faces(self) -> torch.LongTensor:
        """Triangles of the full mesh (F, 3)."""
        return self.mesh_regressor.topology.faces

    def train(self, mode: bool = True) -> "CLIPHand3DModel":
        """Like nn.Module.train, but the frozen text tower always stays in eval mode."""
        super().train(mode)
        if self.text_model is not None:
            self.text_model.eval()
        return self

    def load_pretrained_encoders(self, backbone: bool | None = None, text_model: bool | None = None) -> None:
        """Load ImageNet ResNet weights (`config.backbone`) and the CLIP text tower
        (`config.text_model_name_or_path`) by name or local path. Defaults: `config.use_pretrained_backbone` and
        `config.use_pretrained_text_model`. This is the only place that may reach the network."""
        if backbone if backbone is not None else self.config.use_pretrained_backbone:
            pretrained = type(self.backbone).from_pretrained(self.config.backbone, out_features=list(PYRAMID_FEATURES))
            self._copy_weights(self.backbone, pretrained, "backbone_config", self.config.backbone)
        load_text = text_model if text_model is not None else self.config.use_pretrained_text_model
        if load_text and self.text_model is not None:
            pretrained = CLIPTextModel.from_pretrained(self.config.text_model_name_or_path)
            self._copy_weights(self.text_model, pretrained, "text_config", self.config.text_model_name_or_path)

    @staticmethod
    def _copy_weights(target: nn.Module, source: nn.Module, config_field: str, name: str) -> None:
        try:
            target.load_state_dict(source.state_dict())
        except RuntimeError as error:
            raise ValueError(f"{config_field} does not match the pretrained weights of {name!r}: {error}") from None

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pixel_values_view2: torch.FloatTensor | None = None,
        text_input_ids: torch.LongTensor | None = None,
        text_attention_mask: torch.LongTensor | None = None,
        labels: dict[str, torch.Tensor] | None = None,
        predict_mesh: bool = True,
        return_dict: bool | None = None,
        **unknown_inputs,
    ) -> CLIPHand3DOutput | tuple:
        r"""
        pixel_values (`(batch_size, 3, image_size, image_size)`): normalised crops from `CLIPHand3DImageProcessor`.
        pixel_values_view2: a second augmentation of the same images, for the consistency losses (training).
        text_input_ids, text_attention_mask (`(batch_size, 3, max_text_length)`): the tokenised prompts along x, y,
            z from `CLIPHand3DProcessor`; enable the pose-text logits and the CLIP loss.
        labels (`dict[str, torch.Tensor]`): the targets in uvd space, named as in `losses.LABEL_NAMES`
            (`joints_uvd`, `joints_valid`, `vertices_uvd`, `vertices_valid`, their `_view2` twins and
            `view2_affine_uv`); giving them computes `loss`. An unknown name is an error.
        predict_mesh (`bool`): False skips the mesh regressor: joints (and the CLIP loss) only, `vertices_uvd` is
            None. Cheaper; stage 1 of training uses it. Vertex labels cannot be given then.

        The outputs are those of the first view.
        """
        if unknown_inputs:
            raise ValueError(
                f"unknown inputs {sorted(unknown_inputs)}: the model takes {list(INPUT_NAMES)}, predict_mesh, "
                f"return_dict, and its targets as labels={{...}} with names in {list(LABEL_NAMES)}"
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_inputs(pixel_values, pixel_values_view2, text_input_ids)
        batch_size = pixel_values.shape[0]
        self.criterion.check_labels(labels, batch_size, predict_mesh, two_views=pixel_values_view2 is not None)
        images = pixel_values if pixel_values_view2 is None else torch.cat([pixel_values, pixel_values_view2])
        joints, heatmap_logits, heatmaps, vertices = self._predict(images, predict_mesh)
        predictions = {
            "joints_uvd": joints[:batch_size],
            "vertices_uvd": None if vertices is None else vertices[:batch_size],
        }
        if pixel_values_view2 is not None:
            predictions["joints_uvd" + VIEW2_SUFFIX] = joints[batch_size:]
            predictions["vertices_uvd" + VIEW2_SUFFIX] = None if vertices is None else vertices[batch_size:]

        pose_embeds = text_embeds = clip_logits = None
        if text_input_ids is not None and self.pose_text_matcher is not None:
            pose_embeds, text_embeds = self._embed(heatmap_logits, text_input_ids, text_attention_mask, batch_size)
            pose_embeds, text_embeds = pose_embeds.float(), text_embeds.float()
        # The losses run in float32 under mixed precision too: bfloat16 would round uvd coordinates of 0-63 bins
        # to a quarter of a bin, and the contrastive logits to 3 significant digits.
        with torch.autocast(pixel_values.device.type, enabled=False):
            if pose_embeds is not None:
                scales = self.pose_text_matcher.scales().float()
                # Only training contrasts against other processes' samples: in eval each process scores its own.
                gather = self.config.gather_clip_features and self.training
                clip_logits = pose_text_logits(pose_embeds, text_embeds, scales, gather=gather)
            loss, terms = self.criterion(predictions, labels, self.faces, clip_logits)

        output = CLIPHand3DOutput(
            loss=loss,
            joints_uvd=predictions["joints_uvd"],
            vertices_uvd=predictions["vertices_uvd"],
            heatmaps=tuple(heatmap[:batch_size] for heatmap in heatmaps),
            pose_embeds=pose_embeds,
            text_embeds=text_embeds,
            logits_per_pose=None if clip_logits is None else clip_logits[0],
            faces=self.faces,
            **terms,
        )
        return output if return_dict else output.to_tuple()

    def _check_inputs(self, pixel_values, pixel_values_view2, text_input_ids) -> None:
        size = self.config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(
                f"pixel_values must have shape (batch, 3, {size}, {size}), got {tuple(pixel_values.shape)}"
            )
        batch_size = pixel_values.shape[0]
        if text_input_ids is not None and tuple(text_input_ids.shape[:2]) != (batch_size, 3):
            raise ValueError(
                f"text_input_ids must have shape (batch, 3, length) with batch {batch_size}, "
                f"got {tuple(text_input_ids.shape)}"
            )
        if pixel_values_view2 is not None and pixel_values_view2.shape != pixel_values.shape:
            raise ValueError(
                f"pixel_values_view2 must have the shape of pixel_values {tuple(pixel_values.shape)}, "
                f"got {tuple(pixel_values_view2.shape)}"
            )

    def _predict(self, images: torch.Tensor, predict_mesh: bool = True):
        """images -> joints (B, J, 3), heatmap logits, heatmaps, vertices (B, V, 3) or None, all in uvd space."""
        config = self.config
        features = self.backbone(images).feature_maps
        joints, heatmap_logits, heatmaps = self.lixel_regressor(features[4])
        if not predict_mesh:
            return joints, heatmap_logits, heatmaps, None
        # The mesh regressor starts from the predicted joints without moving them: the joints learn from their own
        # loss, the mesh learns offsets from them.
        anchor_joints = joints.detach()
        planes = joint_heatmap_planes(anchor_joints, config.heatmap_size, config.depth_size, config.heatmap_sigma)
        joint_features = self.joint_feature_encoder(planes, features[0])
        pyramid = [features[4], features[3], features[2], features[1]]
        vertices = self.mesh_regressor(joint_features, anchor_joints, pyramid)
        return joints, heatmap_logits, heatmaps, vertices

    def _embed(self, heatmap_logits, text_input_ids, text_attention_mask, batch_size):
        """Pose and text embeddings (B_clip, 3, P) of the first `clip_batch_size` samples of the first view."""
        clip_size = min(batch_size, self.config.clip_batch_size or batch_size)
        logits = tuple(axis_logits[:clip_size] for axis_logits in heatmap_logits)
        pose_embeds = self.pose_text_matcher.pose_embeddings(logits)
        if self.text_model is None:
            raise ValueError(
                "text inputs were given but the model was loaded with with_text_model=False; reload it with "
                "with_text_model=True to compute the CLIP loss"
            )
        input_ids = text_input_ids[:clip_size]
        attention_mask = torch.ones_like(input_ids) if text_attention_mask is None else text_attention_mask[:clip_size]
        with torch.no_grad():
            token_features = self.text_model(
                input_ids=input_ids.flatten(0, 1), attention_mask=attention_mask.flatten(0, 1)
            ).last_hidden_state
        token_features = token_features.view(clip_size, 3, *token_features.shape[1:])
        text_embeds = self.pose_text_matcher.text_embeddings(token_features, attention_mask)
        return pose_embeds, text_embeds


# save_pretrained writes an auto_map and copies this folder, so that AutoModel.from_pretrained(folder,
# trust_remote_code=True) works where clip_hand3d is not installed.
CLIPHand3DModel.register_for_auto_class("AutoModel")

__all__ = ["INPUT_NAMES", "CLIPHand3DModel", "CLIPHand3DOutput", "CLIPHand3DPreTrainedModel"]
