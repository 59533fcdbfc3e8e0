"""The contrastive objectives of encoder pre-training (`pretrain.py`): NT-Xent over the global batch, HandCLR's
adaptive weights from 2D keypoint distances, and PeCLR's equivariance (the view's similarity undone on the
projection read as 2D points).

Layout: a batch is two views of N samples, `views` (2, N, D): view 0 of sample i and view 1 of sample i are a
positive pair (SimCLR, PeCLR: two augmentations of one image; HandCLR: a crop and its mined neighbour from another
image). Under torch.distributed the views of every process are gathered (`gather_with_gradients`, the CLIP loss's
gather), so each of this process' 2N anchors is contrasted against the 2 x N_global views of the global batch; the
columns are ordered view-major, column `v * N_global + g` being view v of global sample g.

NT-Xent (temperature tau) of anchor a with positive p, over the other columns k != a:

    l_a = -log exp(w_ap s_ap / tau) / sum_{k != a} exp(w_ak s_ak / tau),    s = cosine similarity

with every w = 1 for SimCLR and PeCLR. HandCLR's weights come from the distances d between the samples' 2D
keypoints (mean L2 over the joints, keypoints normalised to the crop), min-max normalised within the global batch:
a positive pair's weight w+ = (max d+ - d+) / (max d+ - min d+) over the batch's positive pairs (the closer the
poses, the stronger the pull); a negative's, min-max over all pairs of distinct views, by `negative_weighting`:
"distance" (the default), w- = (d - min d) / (max d - min d): the farther the poses, the stronger the push, and a
negative of nearly the same pose (a likely false negative) is hardly pushed; or "closeness", w- = (max d - d) /
(max d - min d), the positives' formula (similar poses pushed hardest). Which of the two HandCLR uses is not in the
facts this package was built from: both are kept, and the choice is an argument. A set whose distances are all
equal gets weight 1.
"""

import torch
from torch.nn import functional

from clip_hand3d.modeling.losses import gather_with_gradients

OBJECTIVES = ("handclr", "peclr", "simclr")
NEGATIVE_WEIGHTINGS = ("distance", "closeness")
DEFAULT_TEMPERATURE = 0.5


def keypoint_distances(keypoints_a: torch.Tensor, keypoints_b: torch.Tensor) -> torch.Tensor:
    """Mean L2 distance over the joints between every pair: (A, J, 2) and (B, J, 2) -> (A, B)."""
    return (keypoints_a[:, None] - keypoints_b[None]).norm(dim=-1).mean(dim=-1)


def min_max_weights(
    distances: torch.Tensor, mask: torch.Tensor | None = None, increasing: bool = False
) -> torch.Tensor:
    """(max d - d) / (max d - min d), max and min over the entries where `mask` is true (all when None): 1 for the
    closest, 0 for the farthest; with `increasing`, (d - min d) / (max d - min d), 0 for the closest. 1 everywhere
    when the distances are all equal."""
    selected = distances if mask is None else distances[mask]
    low, high = selected.min(), selected.max()
    spread = high - low
    if spread <= 0:
        return torch.ones_like(distances)
    return (distances - low) / spread if increasing else (high - distances) / spread


def contrastive_logits(
    views: torch.Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    keypoints: torch.Tensor | None = None,
    gather: bool = True,
    negative_weighting: str = "distance",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The NT-Xent logits of this process' anchors against the global batch.

    Args:
        views: (2, N, D) projections of the two views of N samples (normalised here).
        temperature: tau.
        keypoints: (2, N, J, 2) the 2D keypoints of each view's crop, normalised to the crop, for HandCLR's adaptive
            weights; None for none (every weight 1).
        gather: under torch.distributed, contrast against the views of every process.
        negative_weighting: "distance" or "closeness", see the module docstring.

    Returns:
        (logits, positives, weights): logits (2N, 2 N_global), row `v * N + i` for view v of local sample i, the
        anchor's own column at -inf; positives (2N,) the column of each row's positive; weights (2N, 2 N_global)
        the adaptive weights (None without keypoints).
    """
    if views.dim() != 3 or views.shape[0] != 2:
        raise ValueError(f"views must have shape (2, batch, dim), got {tuple(views.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    num_local = views.shape[1]
    views = functional.normalize(views.float(), dim=-1)
    all_views, offset = gather_with_gradients(views, gather_dim=1) if gather else (views, 0)
    num_global = all_views.shape[1]
    anchors = views.reshape(2 * num_local, -1)
    similarities = anchors @ all_views.reshape(2 * num_global, -1).T

    local = torch.arange(num_local, device=views.device) + offset
    own_columns = torch.cat([local, local + num_global])
    positives = torch.cat([local + num_global, local])
    rows = torch.arange(2 * num_local, device=views.device)

    weights = None
    if keypoints is not None:
        if tuple(keypoints.shape[:2]) != (2, num_local) or keypoints.dim() != 4 or keypoints.shape[-1] != 2:
            raise ValueError(f"keypoints must have shape (2, {num_local}, joints, 2), got {tuple(keypoints.shape)}")
        all_keypoints = keypoints.detach().float()
        if gather:
            all_keypoints, _ = gather_with_gradients(all_keypoints, gather_dim=1)
        weights = adaptive_weights(all_keypoints, negative_weighting)[torch.cat([local, local + num_global])]
        similarities = weights * similarities
    own = torch.zeros_like(similarities, dtype=torch.bool)
    own[rows, own_columns] = True
    return (similarities / temperature).masked_fill(own, float("-inf")), positives, weights


def adaptive_weights(keypoints: torch.Tensor, negative_weighting: str = "distance") -> torch.Tensor:
    """HandCLR's weights of every pair of the global batch's views, (2M, 2M) for keypoints (2, M, J, 2): min-max
    weights of the positive pairs' distances at the positive entries, of all distinct pairs' elsewhere (by
    `negative_weighting`, see the module docstring; the diagonal, an anchor against itself, is 1 and unused)."""
    if negative_weighting not in NEGATIVE_WEIGHTINGS:
        raise ValueError(f"negative_weighting must be one of {NEGATIVE_WEIGHTINGS}, got {negative_weighting!r}")
    num = keypoints.shape[1]
    flat = keypoints.reshape(2 * num, *keypoints.shape[2:])
    distances = keypoint_distances(flat, flat)
    distinct = ~torch.eye(2 * num, dtype=torch.bool, device=keypoints.device)
    weights = min_max_weights(distances, distinct, increasing=negative_weighting == "distance")
    positive_weights = min_max_weights(keypoint_distances(keypoints[0], keypoints[1]).diagonal())
    index = torch.arange(num, device=keypoints.device)
    weights[index, index + num] = positive_weights
    weights[index + num, index] = positive_weights
    weights[~distinct] = 1.0
    return weights


def nt_xent_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """The mean over the rows of -log softmax(logits)[positive], i.e. NT-Xent given `contrastive_logits`."""
    return functional.cross_entropy(logits, positives)


def normalised_view_affine(affine: torch.Tensor, image_size: int) -> torch.Tensor:
    """A (..., 2, 3) map of crop pixels (augmentation: un-augmented crop -> augmented crop) in the crop's normalised
    coordinates, x_n = (x - S/2) / (S/2), the crop spanning [-1, 1]: the same map as x_n' = L x_n + t."""
    half = image_size / 2
    linear = affine[..., :2, :2]
    centre = torch.full((2,), half, dtype=affine.dtype, device=affine.device)
    translation = (
        affine[..., :, 2] + (linear - torch.eye(2, dtype=affine.dtype, device=affine.device)) @ centre
    ) / half
    return torch.cat([linear, translation[..., None]], dim=-1)


def undo_view_transform(projections: torch.Tensor, affine: torch.Tensor, undo_scale: bool = False) -> torch.Tensor:
    """PeCLR's equivariance: read each projection (..., D) as D/2 points in 2D, and undo the view's similarity
    x' = L x + t on them (affine (..., 2, 3), in normalised crop coordinates, see `normalised_view_affine`):
    p = R^T (p' - t), R the rotation of L; with `undo_scale`, p = L^-1 (p' - t) (the scale undone too)."""
    if projections.shape[-1] % 2:
        raise ValueError(f"the projection's size must be even (pairs of coordinates), got {projections.shape[-1]}")
    points = projections.reshape(*projections.shape[:-1], -1, 2)
    linear, translation = affine[..., :2, :2].to(points.dtype), affine[..., None, :, 2].to(points.dtype)
    if undo_scale:
        inverse = torch.linalg.inv(linear)
    else:
        scale = linear.det().abs().sqrt()[..., None, None]
        inverse = (linear / scale).transpose(-1, -2)
    # Row vectors: p = (p' - t) @ inverse^T.
    return ((points - translation) @ inverse.transpose(-1, -2)).reshape(projections.shape)
