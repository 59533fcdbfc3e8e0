"""Pre-train CLIP-Hand3D's encoder on unlabeled hand crops (HandCLR, PeCLR or SimCLR) with Accelerate.

    accelerate launch pretrain.py --recipe recipes/handclr_tiny_cpu.json --pairs outputs/pairs-synthetic
    accelerate launch pretrain.py --objective simclr --dataset synthetic:2000 --output_dir outputs/simclr-tiny
    accelerate launch train.py --init_from outputs/handclr-tiny/encoder --dataset synthetic:500 ...

The encoder is the variant's ResNet backbone (`--config`), its last feature map pooled, and a projection head
(hidden 512, BatchNorm, ReLU, 128). Each step contrasts two views of every pair of the batch against the views of
the global batch (every process, `pretraining_objectives.contrastive_logits`): SimCLR's positives are two
augmentations of one image; PeCLR undoes each view's rotation and translation on the projection first; HandCLR
takes a crop and its mined neighbour from another image (`--pairs`, from `clip-hand3d mine-pairs`) and weighs the
similarities by their 2D keypoint distances. `checkpoint-{step}` folders let `--resume_from_checkpoint latest`
continue; the output folder ends with the encoder checkpoint `encoder/` (backbone weights, projection head,
`encoder_config.json`) and `training_curve.json`.
"""

import copy
import dataclasses
import json
import logging
import math
import time
from argparse import Namespace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.modeling import CLIPHand3DConfig
from clip_hand3d.modeling.configuration_clip_hand3d import PYRAMID_FEATURES
from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.checkpoints import resume_progress, save_checkpoint
from clip_hand3d.training.data import collate_hand_batch
from clip_hand3d.training.loop import NonFiniteLossGuard, Throughput, optimizer_step, resumed_batches
from clip_hand3d.training.precision import launch_device, log_auto_precision, resolve_mixed_precision
from clip_hand3d.training.pretraining import (
    LARS,
    EncoderInfo,
    HandEncoder,
    parameter_groups,
    save_encoder,
    scaled_learning_rate,
)
from clip_hand3d.training.pretraining_arguments import parse_args
from clip_hand3d.training.pretraining_data import ContrastivePairs, ContrastiveViews, load_pairs, load_pool, mined_from
from clip_hand3d.training.pretraining_objectives import contrastive_logits, nt_xent_loss, undo_view_transform
from clip_hand3d.training.schedules import build_scheduler
from clip_hand3d.variants import load_processor
from train import out_of_time, tracker_config, warn_about_idle_cpu_cores

logger = get_logger(__name__)
ENCODER_DIR = "encoder"


def build_encoder(args, config: CLIPHand3DConfig) -> tuple[HandEncoder, str]:
    """The encoder and where its backbone's weights come from (random init or the variant's ImageNet ResNet)."""
    encoder = HandEncoder(config, args.projection_hidden_dim, args.projection_dim)
    if not args.pretrained_backbone:
        return encoder, "random init"
    pretrained = type(encoder.backbone).from_pretrained(config.backbone, out_features=list(PYRAMID_FEATURES))
    encoder.backbone.load_state_dict(pretrained.state_dict())
    return encoder, config.backbone


def build_optimizer(args, encoder: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Adam in LARS (HandCLR, PeCLR), Adam or AdamW; weight decay on weights only, not biases and norms."""
    groups = parameter_groups(encoder, args.weight_decay)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate)
    if args.optimizer == "adam":
        return torch.optim.Adam(groups, lr=learning_rate)
    return LARS(torch.optim.Adam(groups, lr=learning_rate), trust_coefficient=args.lars_trust_coefficient)


def crop_processor(image_processor: CLIPHand3DImageProcessor, image_size: int) -> CLIPHand3DImageProcessor:
    """The variant's image processor with crops of `image_size` pixels (HandCLR pre-trains on 128 px crops)."""
    if image_size == image_processor.image_size:
        return image_processor
    resized = copy.deepcopy(image_processor)
    resized.image_size = image_size
    return resized


def per_process_batch_size(args, num_processes: int) -> int:
    """--global_batch_size split over processes and accumulation steps (it must divide), else --train_batch_size."""
    if args.global_batch_size is None:
        return args.train_batch_size
    parts = num_processes * args.gradient_accumulation_steps
    if args.global_batch_size % parts:
        raise ValueError(
            f"--global_batch_size {args.global_batch_size} is not divisible by {num_processes} processes x "
            f"{args.gradient_accumulation_steps} accumulation steps"
        )
    return args.global_batch_size // parts


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision, launch_device()),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    warn_about_idle_cpu_cores(accelerator)
    log_auto_precision(args.mixed_precision, accelerator)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    args.train_batch_size = per_process_batch_size(args, accelerator.num_processes)

    config = CLIPHand3DConfig.from_pretrained(args.config)
    processor = load_processor(args.config, config)
    image_size = args.image_size or config.image_size
    encoder, initialized_from = build_encoder(args, config)
    if args.channels_last:
        encoder.to(memory_format=torch.channels_last)
    with accelerator.main_process_first():
        rows = load_pool(args.dataset, image_size, seed=args.data_seed, num_proc=args.preprocessing_num_workers)
        pairs = load_pairs(args.pairs) if args.pairs is not None else None
    if pairs is not None and mined_from(args.pairs) not in (None, args.dataset):
        logger.warning(
            f"--pairs {args.pairs} were mined from {mined_from(args.pairs)!r}, --dataset is {args.dataset!r}: their "
            "row indices must be the same rows"
        )
    augmentation = (
        dataclasses.replace(HandAugmentationConfig.train(), rotation_degrees=args.rotation_degrees)
        if args.augment
        else HandAugmentationConfig.eval()
    )
    views = ContrastiveViews(crop_processor(processor.image_processor, image_size), augmentation)
    samples = ContrastivePairs(rows, views, pairs, num_candidates=args.num_positive_candidates, seed=args.seed)
    if args.train_batch_size * accelerator.num_processes > len(samples):
        raise ValueError(
            f"--train_batch_size {args.train_batch_size} x {accelerator.num_processes} processes is larger than the "
            f"pre-training data ({len(samples)} {'pairs' if pairs is not None else 'rows'} of {args.dataset})"
        )
    dataloader = DataLoader(
        samples,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_hand_batch,
        num_workers=args.dataloader_num_workers,
    )

    steps_per_epoch = math.ceil(len(dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_steps = args.max_steps or args.num_epochs * steps_per_epoch
    global_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    learning_rate = scaled_learning_rate(args.learning_rate, global_batch, args.lr_scaling)
    optimizer = build_optimizer(args, encoder, learning_rate)
    warmup_steps = args.lr_warmup_steps + round(args.lr_warmup_epochs * steps_per_epoch)
    schedule = Namespace(**{**vars(args), "lr_warmup_steps": warmup_steps})
    scheduler = build_scheduler(optimizer, schedule, max_steps, steps_per_epoch, accelerator.num_processes)
    encoder, optimizer, dataloader, scheduler = accelerator.prepare(encoder, optimizer, dataloader, scheduler)
    if accelerator.is_main_process:
        accelerator.init_trackers("clip-hand3d-pretraining", config=tracker_config(args))

    progress = resume_progress(accelerator, output_dir, args.resume_from_checkpoint)

    logger.info(
        f"pre-training the encoder of {config_name(args)} ({args.objective}, equivariance {args.equivariance}) on "
        f"{len(samples)} {'pairs' if pairs is not None else 'rows'} of {args.dataset} for {max_steps} steps, batch "
        f"{args.train_batch_size} x {accelerator.num_processes} processes, learning rate {learning_rate:.3g}"
    )
    curve = pretrain_loop(args, accelerator, encoder, optimizer, scheduler, dataloader, samples, progress, max_steps)
    accelerator.wait_for_everyone()
    result = {"steps": progress["global_step"], "loss": curve[-1]["loss"] if curve else None}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(encoder)
        info = EncoderInfo(
            config_name=config_name(args),
            backbone_config=config.backbone_config.to_dict(),
            objective=args.objective,
            steps=progress["global_step"],
            dataset=args.dataset,
            initialized_from=initialized_from,
            image_size=image_size,
            projection=[unwrapped.feature_size, args.projection_hidden_dim, args.projection_dim],
            equivariance=args.equivariance,
            temperature=args.temperature,
            negative_weighting=args.negative_weighting if args.objective == "handclr" else None,
        )
        save_encoder(unwrapped, output_dir / ENCODER_DIR, info)
        (output_dir / "training_curve.json").write_text(json.dumps(curve, indent=2))
        logger.info(f"encoder saved to {output_dir / ENCODER_DIR}: train.py --init_from {output_dir / ENCODER_DIR}")
    accelerator.end_training()
    return result


def config_name(args) -> str:
    return Path(args.config).name


def contrastive_loss(args, encoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(NT-Xent loss of this process' anchors, the share of anchors whose most similar view is their positive)."""
    images = torch.cat([batch["pixel_values"], batch["pixel_values_view2"]])
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    projections = encoder(images)
    # The loss in float32 under mixed precision too (as CLIP-Hand3D's): similarities / 0.5 in fp16 lose digits.
    with torch.autocast(images.device.type, enabled=False):
        views = projections.float().reshape(2, batch["pixel_values"].shape[0], -1)
        if args.equivariance:
            views = undo_view_transform(views, torch.stack([batch["view_affine"], batch["view_affine_view2"]]))
        keypoints = None
        if args.objective == "handclr":
            keypoints = torch.stack([batch["keypoints_2d"], batch["keypoints_2d_view2"]])
        logits, positives, _ = contrastive_logits(
            views, args.temperature, keypoints, gather=True, negative_weighting=args.negative_weighting
        )
        loss = nt_xent_loss(logits, positives)
    accuracy = (logits.detach().argmax(dim=1) == positives).float().mean()
    return loss, accuracy


def pretrain_loop(args, accelerator, encoder, optimizer, scheduler, dataloader, samples, progress, max_steps) -> list:
    """Optimise until `max_steps` (or the time budget); updates `progress` in place; returns the logged curve."""
    start = time.monotonic()
    bar = tqdm(
        total=max_steps,
        initial=progress["global_step"],
        disable=not accelerator.is_local_main_process,
        desc="pretrain",
    )
    guard = NonFiniteLossGuard(args.max_consecutive_nan_steps)
    curve = []
    throughput = Throughput()
    encoder.train()
    for batch in resumed_batches(accelerator, dataloader, progress, samples):
        with accelerator.accumulate(encoder):
            loss, accuracy = contrastive_loss(args, encoder, batch)
            finite = optimizer_step(accelerator, encoder, optimizer, scheduler, loss, args.max_grad_norm)
        throughput.add(batch["pixel_values"].shape[0] * accelerator.num_processes)
        if guard.skipped(finite, progress["global_step"]) or not accelerator.sync_gradients:
            continue
        progress["global_step"] += 1
        bar.update(1)
        if progress["global_step"] % args.logging_steps == 0 or progress["global_step"] == max_steps:
            record = {
                "step": progress["global_step"],
                "loss": accelerator.gather(loss.detach()[None]).mean().item(),
                "accuracy": accelerator.gather(accuracy[None]).mean().item(),
                "lr": scheduler.get_last_lr()[0],
                "pairs_per_second": throughput.read(),
            }
            accelerator.log(record, step=progress["global_step"])
            bar.set_postfix({name: f"{value:.3g}" for name, value in record.items() if name != "step"})
            curve.append(record)
        if progress["global_step"] % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, dict(progress), args.checkpoints_total_limit)
        if progress["global_step"] >= max_steps or out_of_time(accelerator, start, args.max_train_minutes):
            bar.close()
            return curve


if __name__ == "__main__":
    main()
