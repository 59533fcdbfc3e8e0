"""The CLIP loss across two CPU processes (gloo): logits span the global batch and gradients match one process."""

import socket

import torch
import torch.distributed as distributed
import torch.multiprocessing as multiprocessing

from clip_hand3d.modeling.losses import clip_loss, pose_text_logits

WORLD_SIZE, LOCAL_BATCH, DIM = 2, 3, 8


def embeddings() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    pose = torch.nn.functional.normalize(torch.randn(WORLD_SIZE * LOCAL_BATCH, 3, DIM, generator=generator), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(WORLD_SIZE * LOCAL_BATCH, 3, DIM, generator=generator), dim=-1)
    return pose, text, torch.tensor([1.0, 2.0, 4.0])


def run_rank(rank: int, port: int, results) -> None:
    distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    pose, text, scales = embeddings()
    rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    local_pose = pose[rows].clone().requires_grad_(True)
    local_text = text[rows].clone().requires_grad_(True)
    logits, logits_per_text, first_label = pose_text_logits(local_pose, local_text, scales, gather=True)
    loss = clip_loss(logits, logits_per_text, first_label)
    loss.backward()
    results[rank] = (loss.detach(), logits.detach(), local_pose.grad, local_text.grad)
    distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_clip_loss_over_processes_equals_the_global_batch_in_one_process():
    manager = multiprocessing.Manager()
    results = manager.dict()
    multiprocessing.spawn(run_rank, args=(free_port(), results), nprocs=WORLD_SIZE, join=True)

    pose, text, scales = embeddings()
    pose.requires_grad_(True)
    text.requires_grad_(True)
    # One process: each rank's loss is its rows against every column; the gradients of their sum are what the
    # gather's backward gives each rank (DDP then averages parameter gradients over ranks).
    total = 0
    for rank in range(WORLD_SIZE):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        logits_pose = scales[:, None, None] * torch.einsum("iap,jap->aij", pose[rows], text)
        logits_text = scales[:, None, None] * torch.einsum("iap,jap->aij", text[rows], pose)
        labels = torch.arange(LOCAL_BATCH) + rank * LOCAL_BATCH
        rank_loss = torch.stack(
            [
                torch.nn.functional.cross_entropy(logits_pose[axis], labels)
                + torch.nn.functional.cross_entropy(logits_text[axis], labels)
                for axis in range(3)
            ]
        ).mean()
        loss, logits, pose_grad, text_grad = results[rank]
        assert logits.shape == (3, LOCAL_BATCH, WORLD_SIZE * LOCAL_BATCH)
        torch.testing.assert_close(loss, rank_loss.detach())
        torch.testing.assert_close(logits, logits_pose.detach())
        total = total + rank_loss
    total.backward()
    for rank in range(WORLD_SIZE):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        _, _, pose_grad, text_grad = results[rank]
        torch.testing.assert_close(pose_grad, pose.grad[rows])
        torch.testing.assert_close(text_grad, text.grad[rows])
