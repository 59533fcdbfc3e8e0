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
from .joint_regressor import LixelJointRegressor
from .losses import (
    clip_loss,
    consistency_2d_loss,
    consistency_3d_loss,
    edge_loss,
    joint_offset_loss,
    masked_l1,
    normal_loss,
)
from .mesh_regressor import JointFeatureEncoder, MeshRegressor, joint_heatmap_planes
from .pose_text_matching import PoseTextMatcher

LOSS_TERMS = (
    "loss_joints",
    "loss_joint_offsets",
    "loss_vertices",
    "loss_normal",
    "loss_edge",
    "loss_consistency_2d",
    "loss_consistency_3d",
    "loss_clip",
)


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
        self.joint_regressor = LixelJointRegressor(
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
        text_input_ids: torch.LongTensor | None = None,
        text_attention_mask: torch.LongTensor | None = None,
        joints_uvd: torch.FloatTensor | None = None,
        vertices_uvd: torch.FloatTensor | None = None,
        joints_valid: torch.BoolTensor | None = None,
        vertices_valid: torch.BoolTensor | None = None,
        pixel_values_view2: torch.FloatTensor | None = None,
        joints_uvd_view2: torch.FloatTensor | None = None,
        vertices_uvd_view2: torch.FloatTensor | None = None,
        joints_valid_view2: torch.BoolTensor | None = None,
        view2_affine_uv: torch.FloatTensor | None = None,
        predict_mesh: bool = True,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CLIPHand3DOutput | tuple:
        r"""
        pixel_values (`(batch_size, 3, image_size, image_size)`): normalised crops from `CLIPHand3DImageProcessor`.
        text_input_ids, text_attention_mask (`(batch_size, 3, max_text_length)`): the tokenised prompts along x, y,
            z from `CLIPHand3DProcessor`; enable the pose-text logits and the CLIP loss.
        joints_uvd (`(batch_size, num_joints, 3)`), vertices_uvd (`(batch_size, num_vertices, 3)`): targets in uvd
            space; giving `joints_uvd` computes the loss.
        joints_valid (`(batch_size, num_joints)`), vertices_valid (`(batch_size,)`): which targets count (samples
            of data sets without meshes have `vertices_valid` False).
        pixel_values_view2, joints_uvd_view2, vertices_uvd_view2, joints_valid_view2: a second augmentation of the
            same images and its targets, for the consistency losses; view2_affine_uv (`(batch_size, 2, 3)`) maps
            view-1 uv to view-2 uv. The supervised terms are averaged over the views that have targets.
        predict_mesh (`bool`): False skips the mesh regressor: joints (and the CLIP loss) only, `vertices_uvd` is
            None. Cheaper; stage 1 of training uses it. Vertex targets cannot be given then.

        The outputs are those of the first view.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_inputs(pixel_values, text_input_ids, joints_uvd, pixel_values_view2, view2_affine_uv)
        if not predict_mesh and (vertices_uvd is not None or vertices_uvd_view2 is not None):
            raise ValueError("vertices_uvd targets were given with predict_mesh=False; the mesh is not predicted")
        batch_size = pixel_values.shape[0]
        images = pixel_values if pixel_values_view2 is None else torch.cat([pixel_values, pixel_values_view2])
        predicted_joints, heatmap_logits, heatmaps, predicted_vertices = self._predict(images, predict_mesh)

        pose_embeds = text_embeds = logits_per_pose = None
        if text_input_ids is not None and self.pose_text_matcher is not None:
            pose_embeds, text_embeds = self._embed(heatmap_logits, text_input_ids, text_attention_mask, batch_size)
            pose_embeds, text_embeds = pose_embeds.float(), text_embeds.float()

        # The losses run in float32 under mixed precision too: bfloat16 would round uvd coordinates of 0-63 bins
        # to a quarter of a bin, and the contrastive logits to 3 significant digits.
        with torch.autocast(pixel_values.device.type, enabled=False):
            loss, terms, logits_per_pose = self._losses(
                predicted_joints,
                predicted_vertices,
                pose_embeds,
                text_embeds,
                batch_size,
                joints_uvd=joints_uvd,
                joints_valid=joints_valid,
                vertices_uvd=vertices_uvd,
                vertices_valid=vertices_valid,
                joints_uvd_view2=joints_uvd_view2,
                joints_valid_view2=joints_valid_view2,
                vertices_uvd_view2=vertices_uvd_view2,
                view2_affine_uv=view2_affine_uv,
                predict_mesh=predict_mesh,
            )

        output = CLIPHand3DOutput(
            loss=loss,
            joints_uvd=predicted_joints[:batch_size],
            vertices_uvd=predicted_vertices[:batch_size] if predict_mesh else None,
            heatmaps=tuple(heatmap[:batch_size] for heatmap in heatmaps),
            pose_embeds=pose_embeds,
            text_embeds=text_embeds,
            logits_per_pose=logits_per_pose,
            faces=self.faces,
            **terms,
        )
        return output if return_dict else output.to_tuple()

    def _check_inputs(self, pixel_values, text_input_ids, joints_uvd, pixel_values_view2, view2_affine_uv) -> None:
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
        if joints_uvd is not None and tuple(joints_uvd.shape) != (batch_size, self.config.num_joints, 3):
            raise ValueError(
                f"joints_uvd must have shape ({batch_size}, {self.config.num_joints}, 3), got {tuple(joints_uvd.shape)}"
            )
        if pixel_values_view2 is not None and pixel_values_view2.shape != pixel_values.shape:
            raise ValueError(
                f"pixel_values_view2 must have the shape of pixel_values {tuple(pixel_values.shape)}, "
                f"got {tuple(pixel_values_view2.shape)}"
            )
        if view2_affine_uv is not None and tuple(view2_affine_uv.shape) != (batch_size, 2, 3):
            raise ValueError(
                f"view2_affine_uv must have shape ({batch_size}, 2, 3), got {tuple(view2_affine_uv.shape)}"
            )

    def _predict(self, images: torch.Tensor, predict_mesh: bool = True):
        """images -> joints (B, J, 3), heatmap logits, heatmaps, vertices (B, V, 3) or None, all in uvd space."""
        config = self.config
        features = self.backbone(images).feature_maps
        joints, heatmap_logits, heatmaps = self.joint_regressor(features[4])
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

    def _losses(
        self,
        predicted_joints: torch.Tensor,
        predicted_vertices: torch.Tensor | None,
        pose_embeds: torch.Tensor | None,
        text_embeds: torch.Tensor | None,
        batch_size: int,
        joints_uvd: torch.Tensor | None,
        joints_valid: torch.Tensor | None,
        vertices_uvd: torch.Tensor | None,
        vertices_valid: torch.Tensor | None,
        joints_uvd_view2: torch.Tensor | None,
        joints_valid_view2: torch.Tensor | None,
        vertices_uvd_view2: torch.Tensor | None,
        view2_affine_uv: torch.Tensor | None,
        predict_mesh: bool,
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor], torch.Tensor | None]:
        """(total loss or None without joint targets, the loss terms, the pose->text logits or None without text).

        Predictions of both views come stacked along the batch (view 1 first); the view-2 terms are averaged with
        the view-1 terms, and the consistency terms compare the two views."""
        loss_clip = logits_per_pose = None
        if pose_embeds is not None:
            loss_clip, logits_per_pose = clip_loss(
                pose_embeds,
                text_embeds,
                self.pose_text_matcher.scales().float(),
                # Only training contrasts against other processes' samples: in eval each process scores its own.
                gather=self.config.gather_clip_features and self.training,
            )
        two_views = predicted_joints.shape[0] > batch_size
        terms = {}
        loss = None
        if joints_uvd is not None:
            view1, view2 = slice(0, batch_size), slice(batch_size, None)
            terms = self._supervised_terms(
                predicted_joints[view1],
                predicted_vertices[view1] if predict_mesh else None,
                joints_uvd,
                vertices_uvd,
                joints_valid,
                vertices_valid,
            )
            if two_views and joints_uvd_view2 is not None:
                terms_view2 = self._supervised_terms(
                    predicted_joints[view2],
                    predicted_vertices[view2] if predict_mesh else None,
                    joints_uvd_view2,
                    vertices_uvd_view2,
                    joints_valid_view2,
                    vertices_valid,
                )
                terms = {name: (value + terms_view2[name]) / 2 for name, value in terms.items()}
            if two_views and view2_affine_uv is not None:
                terms["loss_consistency_2d"] = consistency_2d_loss(
                    predicted_joints[view1], predicted_joints[view2], view2_affine_uv
                )
                if predict_mesh:
                    terms["loss_consistency_3d"] = consistency_3d_loss(
                        predicted_vertices[view1], predicted_vertices[view2], view2_affine_uv
                    )
            if loss_clip is not None:
                terms["loss_clip"] = loss_clip
            loss = self._weighted_sum(terms)
        elif loss_clip is not None:
            terms["loss_clip"] = loss_clip
        return loss, terms, logits_per_pose

    def _supervised_terms(
        self, joints, vertices, joints_uvd, vertices_uvd, joints_valid, vertices_valid
    ) -> dict[str, torch.Tensor]:
        """L1 joint and vertex losses, normal and edge losses of one view (vertex terms only with mesh targets), and
        the joint offset loss when it has a weight."""
        terms = {"loss_joints": masked_l1(joints, joints_uvd, joints_valid)}
        if self.config.loss_weight_joint_offsets > 0:
            terms["loss_joint_offsets"] = joint_offset_loss(joints, joints_uvd, joints_valid)
        if vertices_uvd is not None:
            terms["loss_vertices"] = masked_l1(vertices, vertices_uvd, vertices_valid)
            terms["loss_normal"] = normal_loss(vertices, vertices_uvd, self.faces, vertices_valid)
            terms["loss_edge"] = edge_loss(vertices, vertices_uvd, self.faces, vertices_valid)
        return terms

    def _weighted_sum(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """a1 (L_joints + L_verts) + a2 (L_normal + L_edge) + a3 (L_c2d + L_c3d) + a4 L_clip + a5 L_offsets, over the
        terms present."""
        config = self.config
        weights = {
            "loss_joints": config.loss_weight_pose,
            "loss_vertices": config.loss_weight_pose,
            "loss_normal": config.loss_weight_mesh,
            "loss_edge": config.loss_weight_mesh,
            "loss_consistency_2d": config.loss_weight_consistency,
            "loss_consistency_3d": config.loss_weight_consistency,
            "loss_clip": config.loss_weight_clip,
            "loss_joint_offsets": config.loss_weight_joint_offsets,
        }
        return sum(weights[name] * value for name, value in terms.items())


# save_pretrained writes an auto_map and copies this folder, so that AutoModel.from_pretrained(folder,
# trust_remote_code=True) works where clip_hand3d is not installed.
CLIPHand3DModel.register_for_auto_class("AutoModel")

__all__ = ["CLIPHand3DModel", "CLIPHand3DOutput", "CLIPHand3DPreTrainedModel", "LOSS_TERMS"]
