"""The training loss of CLIP-Hand3D (paper section 3.5), in the model's uvd space: its targets (`LABEL_NAMES`),
its terms (`LOSS_TERMS`) and `CLIPHand3DLoss`, which weighs them.

u and v are heatmap pixels and d depth bins; with the default crop (1.3 x the hand box on 224 pixels, 56 heatmap
pixels) and depth range (0.3 m over 56 bins) one unit is about 5 mm on every axis, so normals and edge lengths
are computed directly in uvd.
"""

from collections.abc import Mapping

import torch
from torch import distributed
from torch.nn import functional

VIEW2_SUFFIX = "_view2"
# The targets of one batch, the `labels` of `CLIPHand3DModel.forward` (B samples, J joints, V vertices, uvd space):
#   joints_uvd (B, J, 3); joints_valid (B, J) bool, which joints count;
#   vertices_uvd (B, V, 3); vertices_valid (B,) bool, which samples have a mesh (both views);
#   the same for the second view with the suffix `_view2` (its image is the input `pixel_values_view2`), and
#   view2_affine_uv (B, 2, 3), the map from view-1 uv to view-2 uv, for the consistency losses.
LABEL_NAMES = (
    "joints_uvd",
    "joints_valid",
    "vertices_uvd",
    "vertices_valid",
    "joints_uvd" + VIEW2_SUFFIX,
    "joints_valid" + VIEW2_SUFFIX,
    "vertices_uvd" + VIEW2_SUFFIX,
    "view2_affine_uv",
)
MESH_LABEL_NAMES = ("vertices_uvd", "vertices_valid", "vertices_uvd" + VIEW2_SUFFIX)
VIEW2_LABEL_NAMES = tuple(name for name in LABEL_NAMES if name.endswith(VIEW2_SUFFIX)) + ("view2_affine_uv",)
# The loss terms, each an output of the model (before weighting) and a column of the training log.
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


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over the elements whose `mask` (broadcast from the leading dimensions) is true.

    prediction, target: (B, N, 3); mask: (B,) or (B, N) booleans, or None for all. Returns 0 when nothing counts.
    """
    error = (prediction - target).abs()
    if mask is None:
        return error.mean()
    while mask.dim() < error.dim():
        mask = mask[..., None]
    weights = mask.to(error.dtype).expand_as(error)
    return (error * weights).sum() / weights.sum().clamp(min=1.0)


def joint_offset_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L1 error of the offsets between joints (not in the paper): the mean over all ordered pairs (i, j) of
    |(p_i - p_j) - (t_i - t_j)|, per coordinate, in the units of the inputs (uvd).

    A shift of the whole prediction leaves it unchanged, so it trains the hand's shape apart from its position,
    which is what root-relative and Procrustes-aligned metrics score.

    prediction, target: (B, N, 3); mask: (B,) or (B, N) booleans (a pair counts when both joints do), or None.
    """
    errors = prediction - target
    pair_errors = (errors[:, :, None] - errors[:, None]).flatten(1, 2)
    if mask is not None and mask.dim() == 2:
        mask = (mask[:, :, None].bool() & mask[:, None].bool()).flatten(1)
    return masked_l1(pair_errors, torch.zeros_like(pair_errors), mask)


def face_edges(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Edge vectors of each triangle (B, F, 3 edges, 3): v1 - v0, v2 - v1, v0 - v2."""
    corners = vertices[:, faces]
    return torch.stack(
        [
            corners[:, :, 1] - corners[:, :, 0],
            corners[:, :, 2] - corners[:, :, 1],
            corners[:, :, 0] - corners[:, :, 2],
        ],
        dim=2,
    )


def normal_loss(
    predicted: torch.Tensor, target: torch.Tensor, faces: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L_N: |cos| between each predicted edge and the ground-truth normal of its triangle, averaged.

    predicted, target: (B, V, 3); faces (F, 3); mask (B,) for the samples that have a mesh.
    """
    target_edges = face_edges(target, faces)
    target_normals = functional.normalize(torch.cross(target_edges[:, :, 0], -target_edges[:, :, 2], dim=-1), dim=-1)
    predicted_edges = functional.normalize(face_edges(predicted, faces), dim=-1)
    cosines = (predicted_edges * target_normals[:, :, None]).sum(dim=-1).abs()
    return masked_l1(cosines, torch.zeros_like(cosines), mask)


def edge_loss(
    predicted: torch.Tensor, target: torch.Tensor, faces: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L_E: absolute difference of predicted and ground-truth edge lengths, averaged over all triangle edges."""
    predicted_lengths = face_edges(predicted, faces).norm(dim=-1)
    target_lengths = face_edges(target, faces).norm(dim=-1)
    return masked_l1(predicted_lengths, target_lengths, mask)


def apply_uv_affine(points_uvd: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Move the u, v of points (B, N, 3) by per-sample affines (B, 2, 3); d is unchanged (in-plane rotation, scale
    and shift of the crop leave root-relative depth as it is)."""
    uv = points_uvd[..., :2] @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]
    return torch.cat([uv, points_uvd[..., 2:]], dim=-1)


def consistency_2d_loss(joints_view1: torch.Tensor, joints_view2: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """L_C2d = |Aff(P1) - P2|_1 on the joints' u, v, with `affine` mapping view-1 uv to view-2 uv."""
    moved = apply_uv_affine(joints_view1, affine)
    return (moved[..., :2] - joints_view2[..., :2]).abs().mean()


def consistency_3d_loss(
    vertices_view1: torch.Tensor, vertices_view2: torch.Tensor, affine: torch.Tensor
) -> torch.Tensor:
    """L_C3d = |Rot(V1) - V2|_1 on the vertices, the transform being the same in-plane affine in uvd space."""
    return (apply_uv_affine(vertices_view1, affine) - vertices_view2).abs().mean()


def gather_with_gradients(features: torch.Tensor, gather_dim: int = 0) -> tuple[torch.Tensor, int]:
    """The features of all processes concatenated along `gather_dim` (the batch dimension), with gradients
    flowing back to each process' own part, and the offset of this process' samples in it. Without
    torch.distributed, the features themselves and 0."""
    if not (distributed.is_available() and distributed.is_initialized()) or distributed.get_world_size() == 1:
        return features, 0
    from torch.distributed.nn.functional import all_gather

    gathered = all_gather(features)
    return torch.cat(gathered, dim=gather_dim), distributed.get_rank() * features.shape[gather_dim]


def pose_text_logits(
    pose_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scales: torch.Tensor, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The logit matrices of eq. 7, per axis, against the global batch.

    Args:
        pose_embeddings, text_embeddings: (B, 3, P), L2-normalised.
        logit_scales: (3,) inverse temperatures.
        gather: under torch.distributed, contrast against the features of every process (the global batch).

    Returns:
        (logits_per_pose, logits_per_text, first_label): (3, B, B_global) each, logits_per_pose[a, i, j] =
        tau_a <pose_i, text_j> along axis a (and the other way round), and the column of this process' first
        sample, so that sample i matches column first_label + i.
    """
    # One collective for both: two gathers could run their backward passes in different orders on different
    # processes and exchange each other's gradients.
    both, offset = torch.stack([pose_embeddings, text_embeddings]), 0
    if gather:
        both, offset = gather_with_gradients(both, gather_dim=1)
    all_pose, all_text = both.unbind(0)
    scales = logit_scales[:, None, None]
    logits_per_pose = scales * torch.einsum("iap,jap->aij", pose_embeddings, all_text)
    logits_per_text = scales * torch.einsum("iap,jap->aij", text_embeddings, all_pose)
    return logits_per_pose, logits_per_text, offset


def clip_loss(logits_per_pose: torch.Tensor, logits_per_text: torch.Tensor, first_label: int = 0) -> torch.Tensor:
    """L_CLIP: per axis, the cross-entropy of pose->text plus text->pose over the logit matrices of
    `pose_text_logits` (eq. 7), averaged over the three axes."""
    labels = torch.arange(logits_per_pose.shape[1], device=logits_per_pose.device) + first_label
    losses = [
        functional.cross_entropy(logits_per_pose[axis], labels)
        + functional.cross_entropy(logits_per_text[axis], labels)
        for axis in range(logits_per_pose.shape[0])
    ]
    return torch.stack(losses).mean()


class CLIPHand3DLoss:
    """The weighted sum of the loss terms over the targets given:

    a1 (L_joints + L_verts) + a2 (L_normal + L_edge) + a3 (L_c2d + L_c3d) + a4 L_clip + a5 L_offsets,

    the a_k being the config's `loss_weight_pose`, `loss_weight_mesh`, `loss_weight_consistency`,
    `loss_weight_clip` and `loss_weight_joint_offsets` (the joint offset loss is not in the paper and is left out
    at weight 0). With a second view, each supervised term is the mean of its two views' values.
    """

    def __init__(self, config):
        self.num_joints = config.num_joints
        self.num_vertices = config.level_sizes[-1]
        self.with_joint_offsets = config.loss_weight_joint_offsets > 0
        self.weights = {
            "loss_joints": config.loss_weight_pose,
            "loss_joint_offsets": config.loss_weight_joint_offsets,
            "loss_vertices": config.loss_weight_pose,
            "loss_normal": config.loss_weight_mesh,
            "loss_edge": config.loss_weight_mesh,
            "loss_consistency_2d": config.loss_weight_consistency,
            "loss_consistency_3d": config.loss_weight_consistency,
            "loss_clip": config.loss_weight_clip,
        }

    def check_labels(
        self, labels: Mapping[str, torch.Tensor] | None, batch_size: int, predict_mesh: bool, two_views: bool
    ) -> None:
        """Raise ValueError naming the problem when `labels` do not fit the batch: an unknown name, no
        `joints_uvd`, a wrong shape, mesh targets without the mesh, or second-view targets without its image."""
        if labels is None:
            return
        unknown = sorted(set(labels) - set(LABEL_NAMES))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; the model's labels are {list(LABEL_NAMES)}")
        if "joints_uvd" not in labels:
            raise ValueError(f"labels need 'joints_uvd' (got {sorted(labels)})")
        shapes = {
            "joints_uvd": (batch_size, self.num_joints, 3),
            "joints_valid": (batch_size, self.num_joints),
            "vertices_uvd": (batch_size, self.num_vertices, 3),
            "vertices_valid": (batch_size,),
            "view2_affine_uv": (batch_size, 2, 3),
        }
        for key, value in labels.items():
            shape = shapes[key.removesuffix(VIEW2_SUFFIX)]
            if tuple(value.shape) != shape:
                raise ValueError(f"labels[{key!r}] must have shape {shape}, got {tuple(value.shape)}")
        if not predict_mesh and any(name in labels for name in MESH_LABEL_NAMES):
            raise ValueError("vertex labels were given with predict_mesh=False; the mesh is not predicted")
        if not two_views and any(name in labels for name in VIEW2_LABEL_NAMES):
            raise ValueError("second-view labels were given without pixel_values_view2")

    def __call__(
        self,
        predictions: Mapping[str, torch.Tensor | None],
        labels: Mapping[str, torch.Tensor] | None,
        faces: torch.Tensor,
        clip_logits: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """(total loss, or None without labels; the terms present, before weighting).

        Args:
            predictions: `joints_uvd` (B, J, 3) and `vertices_uvd` (B, V, 3) or None, and with a second view the
                same names with the suffix `_view2`.
            labels: see `LABEL_NAMES` (checked by `check_labels`).
            faces: (F, 3) triangles of the mesh, for the normal and edge losses.
            clip_logits: what `pose_text_logits` returned, for the CLIP loss.
        """
        terms = {}
        if labels is not None:
            terms = self._view_terms(predictions, labels, faces, "")
            if "joints_uvd" + VIEW2_SUFFIX in labels:
                view2 = self._view_terms(predictions, labels, faces, VIEW2_SUFFIX)
                terms = {name: (value + view2[name]) / 2 for name, value in terms.items()}
            if "view2_affine_uv" in labels:
                terms |= self._consistency_terms(predictions, labels["view2_affine_uv"])
        if clip_logits is not None:
            terms["loss_clip"] = clip_loss(*clip_logits)
        loss = sum(self.weights[name] * value for name, value in terms.items()) if labels is not None else None
        return loss, terms

    def _view_terms(self, predictions, labels, faces: torch.Tensor, suffix: str) -> dict[str, torch.Tensor]:
        """L1 joint and vertex losses, normal and edge losses of one view (vertex terms only with mesh targets), and
        the joint offset loss when it has a weight."""
        joints, target_joints = predictions["joints_uvd" + suffix], labels["joints_uvd" + suffix]
        joints_valid = labels.get("joints_valid" + suffix)
        terms = {"loss_joints": masked_l1(joints, target_joints, joints_valid)}
        if self.with_joint_offsets:
            terms["loss_joint_offsets"] = joint_offset_loss(joints, target_joints, joints_valid)
        target_vertices = labels.get("vertices_uvd" + suffix)
        if target_vertices is not None:
            vertices, valid = predictions["vertices_uvd" + suffix], labels.get("vertices_valid")
            terms["loss_vertices"] = masked_l1(vertices, target_vertices, valid)
            terms["loss_normal"] = normal_loss(vertices, target_vertices, faces, valid)
            terms["loss_edge"] = edge_loss(vertices, target_vertices, faces, valid)
        return terms

    @staticmethod
    def _consistency_terms(predictions, view2_affine_uv: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_C2d on the joints and, when the mesh is predicted, L_C3d on the vertices of the two views."""
        terms = {
            "loss_consistency_2d": consistency_2d_loss(
                predictions["joints_uvd"], predictions["joints_uvd" + VIEW2_SUFFIX], view2_affine_uv
            )
        }
        if predictions.get("vertices_uvd") is not None:
            terms["loss_consistency_3d"] = consistency_3d_loss(
                predictions["vertices_uvd"], predictions["vertices_uvd" + VIEW2_SUFFIX], view2_affine_uv
            )
        return terms
