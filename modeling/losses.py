"""Loss functions of CLIP-Hand3D (paper section 3.5), in the model's uvd space.

u and v are heatmap pixels and d depth bins; with the default crop (1.3 x the hand box on 224 pixels, 56 heatmap
pixels) and depth range (0.3 m over 56 bins) one unit is about 5 mm on every axis, so normals and edge lengths
are computed directly in uvd.
"""

import torch
from torch import distributed
from torch.nn import functional


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


def clip_loss(
    pose_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scales: torch.Tensor, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_CLIP: per axis, the cross-entropy of pose->text plus text->pose over the logit matrix (eq. 7), averaged
    over the three axes.

    Args:
        pose_embeddings, text_embeddings: (B, 3, P), L2-normalised.
        logit_scales: (3,) inverse temperatures.
        gather: under torch.distributed, contrast against the features of every process (the global batch).

    Returns:
        (loss, logits (3, B, B_global)): logits[a, i, j] = tau_a <pose_i, text_j> along axis a.
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
    labels = torch.arange(pose_embeddings.shape[0], device=pose_embeddings.device) + offset
    losses = [
        functional.cross_entropy(logits_per_pose[axis], labels)
        + functional.cross_entropy(logits_per_text[axis], labels)
        for axis in range(logits_per_pose.shape[0])
    ]
    return torch.stack(losses).mean(), logits_per_pose
