"""CLIP-Hand3D model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, PreTrainedConfig, ResNetConfig
from transformers.configuration_utils import SubConfigSpec

PYRAMID_FEATURES = ("stem", "stage1", "stage2", "stage3", "stage4")
# CLIP's context length: prompts are padded and truncated to it (the longest, 21 joints, takes 73 local tokens).
MAX_TEXT_LENGTH = 77


@strict
class CLIPHand3DConfig(PreTrainedConfig):
    r"""
    Configuration of [`CLIPHand3DModel`]. The defaults are the paper's model (CLIP-Hand3D, ACM MM 2023): a ResNet-50
    visual encoder on 224 x 224 crops, a CLIP ViT-B/32 text tower, and a mesh regressor over 21 -> 98 -> 389 -> 778
    nodes with widths 256 -> 128 -> 64 -> 32.

    Args:
        backbone_config (`ResNetConfig` or `dict`): the visual encoder. Its out features must be the stem (F0)
            and the four stages (F1..F4).
        backbone (`str`): name or path of pretrained ResNet weights, loaded by
            `CLIPHand3DModel.load_pretrained_encoders` (never at construction).
        use_pretrained_backbone (`bool`): whether `load_pretrained_encoders()` loads `backbone` by default.
        text_config (`CLIPTextConfig` or `dict`): the frozen text tower.
        text_model_name_or_path (`str`): name or path of the pretrained CLIP text model (and its tokenizer).
        use_pretrained_text_model (`bool`): whether `load_pretrained_encoders()` loads the text tower by default.
        with_text_model (`bool`): build the text tower. Inference never runs it: load with
            `with_text_model=False` to keep its weights out of memory.
        image_size (`int`): side of the square input crop, pixels.
        num_joints (`int`): hand joints (21, FreiHAND order).
        heatmap_size (`int`): resolution of the lixel heatmaps along u and v (heatmap pixels).
        depth_size (`int`): number of depth bins of the lixel heatmap along d.
        depth_range (`float`): metres spanned by the depth bins, centred on the root joint.
        joint_deconv_channels (`tuple[int]`): channels of the deconvolutions (kernel 4, stride 2) that upsample F4
            to the heatmap resolution, after a 1x1 convolution to the first of them; their number must bring F4
            (image_size / 32) to heatmap_size. The paper reduces to 256 channels; narrowing the finer ones (128,
            64) keeps the head at a fraction of the encoder's cost.
        heatmap_sigma (`float`): standard deviation (heatmap pixels) of the joint heatmap planes fed to the mesh
            regressor.
        joint_plane_size (`int`): side of the per-joint feature map whose flattened pixels form F_J.
        num_prompt_joints (`int`): joints named in each text prompt (N of the paper).
        max_text_length (`int`): tokens per prompt (padded and truncated).
        text_transformer_layers (`int`): layers of each per-axis text transformer (Phi_x, Phi_y, Phi_z).
        text_transformer_heads (`int`): attention heads of those transformers.
        projection_dim (`int`): size of the shared pose-text embedding space.
        logit_scale_init_value (`float`): initial log of each axis' learnable inverse temperature.
        clip_batch_size (`int` or `None`): samples of a batch used by the CLIP loss (the paper: 32 of 48);
            `None` uses the whole batch.
        gather_clip_features (`bool`): in training under torch.distributed, gather pose and text features from all
            processes (with gradients) so that the logit matrices span the global batch.
        level_sizes (`tuple[int]`): nodes per mesh level, coarse to fine; the first is the joints, the last the
            full mesh.
        mesh_widths (`tuple[int]`): feature width of each level.
        mesh_transformer_layers (`tuple[int]`): transformer layers per level.
        mesh_attention_heads (`tuple[int]`): attention heads per level.
        num_faces (`int`): triangles of the full mesh (1552 for the built-in closed template, 1538 for MANO).
        topology (`str`): `"builtin"` (the package's own hand template, rebuilt at construction) or `"custom"`
            (e.g. MANO: the topology tensors come from the checkpoint or `CLIPHand3DModel.set_topology`).
        loss_weight_pose (`float`): a1, weight of the L1 joint and vertex losses.
        loss_weight_mesh (`float`): a2, weight of the normal and edge losses.
        loss_weight_consistency (`float`): a3, weight of the 2D and 3D consistency losses.
        loss_weight_clip (`float`): a4, weight of the CLIP loss.
        loss_weight_joint_offsets (`float`): weight of the L1 loss on the offsets between every pair of joints
            (`losses.joint_offset_loss`), not in the paper; 0 (the paper's loss) leaves it out.
        use_clip_loss (`bool`): ablation switch "w/o CLIP" when False.
        use_feature_projection (`bool`): ablation switch "w/o feature projection" when False.
        use_sparse_to_dense (`bool`): ablation switch "w/o sparse-to-dense" when False: every level keeps the 21
            joint nodes and a learned linear map spreads them to the full mesh at the end.
        initializer_range (`float`): std of the normal initialisation of linear layers.
    """

    model_type = "clip_hand3d"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=ResNetConfig, init_kwargs={"out_features": list(PYRAMID_FEATURES)}
        ),
        "text_config": CLIPTextConfig,
    }

    backbone_config: dict | ResNetConfig | None = None
    backbone: str | None = "microsoft/resnet-50"
    use_pretrained_backbone: bool = True
    text_config: dict | CLIPTextConfig | None = None
    text_model_name_or_path: str | None = "openai/clip-vit-base-patch32"
    use_pretrained_text_model: bool = True
    with_text_model: bool = True

    image_size: int = 224
    num_joints: int = 21
    heatmap_size: int = 56
    depth_size: int = 56
    depth_range: float = 0.3
    joint_deconv_channels: list[int] | tuple[int, ...] = (256, 128, 64)
    heatmap_sigma: float = 2.0
    joint_plane_size: int = 14

    num_prompt_joints: int = 21
    max_text_length: int = MAX_TEXT_LENGTH
    text_transformer_layers: int = 1
    text_transformer_heads: int = 8
    projection_dim: int = 256
    logit_scale_init_value: float = 2.6592
    clip_batch_size: int | None = None
    gather_clip_features: bool = True

    level_sizes: list[int] | tuple[int, ...] = (21, 98, 389, 778)
    mesh_widths: list[int] | tuple[int, ...] = (256, 128, 64, 32)
    mesh_transformer_layers: list[int] | tuple[int, ...] = (1, 1, 1, 1)
    mesh_attention_heads: list[int] | tuple[int, ...] = (4, 4, 4, 4)
    num_faces: int = 1552
    topology: str = "builtin"

    loss_weight_pose: float = 1.0
    loss_weight_mesh: float = 0.05
    loss_weight_consistency: float = 0.1
    loss_weight_clip: float = 0.1
    loss_weight_joint_offsets: float = 0.0

    use_clip_loss: bool = True
    use_feature_projection: bool = True
    use_sparse_to_dense: bool = True

    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        for name in (
            "joint_deconv_channels",
            "level_sizes",
            "mesh_widths",
            "mesh_transformer_layers",
            "mesh_attention_heads",
        ):
            setattr(self, name, list(getattr(self, name)))
        if isinstance(self.backbone_config, dict):
            self.backbone_config = {
                "model_type": "resnet",
                "out_features": list(PYRAMID_FEATURES),
                **self.backbone_config,
            }
        super().__post_init__(**kwargs)

    def validate_clip_hand3d(self):
        """Fail at construction, naming the field, when values do not fit together."""
        stem_stride, last_stride = 4, 32
        if self.image_size % last_stride != 0:
            raise ValueError(f"image_size must be a multiple of {last_stride}, got {self.image_size}")
        upsampled = self.image_size // last_stride * 2 ** len(self.joint_deconv_channels)
        if upsampled != self.heatmap_size:
            raise ValueError(
                f"heatmap_size ({self.heatmap_size}) must equal image_size / 32 * 2 ** len(joint_deconv_channels) "
                f"= {upsampled}"
            )
        if self.image_size // stem_stride != self.heatmap_size:
            raise ValueError(
                f"heatmap_size ({self.heatmap_size}) must equal the stem resolution image_size / 4 "
                f"= {self.image_size // stem_stride}, where the joint planes meet F0"
            )
        if self.depth_size < 2 or self.depth_range <= 0:
            raise ValueError(f"depth_size must be >= 2 and depth_range > 0, got {self.depth_size}, {self.depth_range}")
        if self.heatmap_sigma <= 0:
            raise ValueError(f"heatmap_sigma must be > 0, got {self.heatmap_sigma}")
        if self.heatmap_size % self.joint_plane_size != 0:
            raise ValueError(
                f"joint_plane_size ({self.joint_plane_size}) must divide heatmap_size ({self.heatmap_size})"
            )
        if not 1 <= self.num_prompt_joints <= self.num_joints:
            raise ValueError(f"num_prompt_joints must be in 1..{self.num_joints}, got {self.num_prompt_joints}")
        self._validate_mesh_levels()
        self._validate_backbone()
        if self.with_text_model and self.use_clip_loss:
            self._validate_text()
        if self.clip_batch_size is not None and self.clip_batch_size < 2:
            raise ValueError(f"clip_batch_size must be None or >= 2, got {self.clip_batch_size}")
        if self.topology not in ("builtin", "custom"):
            raise ValueError(f"topology must be 'builtin' or 'custom', got {self.topology!r}")
        for name in (
            "loss_weight_pose",
            "loss_weight_mesh",
            "loss_weight_consistency",
            "loss_weight_clip",
            "loss_weight_joint_offsets",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def _validate_mesh_levels(self):
        levels = len(self.level_sizes)
        for name in ("mesh_widths", "mesh_transformer_layers", "mesh_attention_heads"):
            if len(getattr(self, name)) != levels:
                raise ValueError(f"{name} needs one value per mesh level ({levels}), got {getattr(self, name)}")
        if self.level_sizes[0] != self.num_joints:
            raise ValueError(f"level_sizes[0] must be num_joints ({self.num_joints}), got {self.level_sizes[0]}")
        if levels != len(PYRAMID_FEATURES) - 1:
            raise ValueError(f"level_sizes needs {len(PYRAMID_FEATURES) - 1} levels (one per F1..F4), got {levels}")
        if list(self.level_sizes) != sorted(set(self.level_sizes)):
            raise ValueError(f"level_sizes must increase strictly, got {self.level_sizes}")
        for width, heads in zip(self.mesh_widths, self.mesh_attention_heads, strict=True):
            if width % heads != 0:
                raise ValueError(f"mesh_widths ({self.mesh_widths}) must be divisible by mesh_attention_heads")

    def _validate_backbone(self):
        features = list(self.backbone_config.out_features)
        if features != list(PYRAMID_FEATURES):
            raise ValueError(f"backbone_config.out_features must be {list(PYRAMID_FEATURES)}, got {features}")

    def _validate_text(self):
        if self.text_config.hidden_size % self.text_transformer_heads != 0:
            raise ValueError(
                f"text_config.hidden_size ({self.text_config.hidden_size}) must be divisible by "
                f"text_transformer_heads ({self.text_transformer_heads})"
            )
        if self.max_text_length > self.text_config.max_position_embeddings:
            raise ValueError(
                f"max_text_length ({self.max_text_length}) exceeds text_config.max_position_embeddings "
                f"({self.text_config.max_position_embeddings})"
            )


CLIPHand3DConfig.register_for_auto_class()

__all__ = ["CLIPHand3DConfig"]
