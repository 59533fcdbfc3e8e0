"""Train CLIP-Hand3D with Accelerate on one GPU, several GPUs or nodes, or the CPU.

    accelerate launch train.py --config clip-hand3d-tiny --dataset synthetic:2000 --output_dir outputs/tiny
    accelerate launch train.py --recipe recipes/freihand_paper_stage1.json --dataset freihand:/data/FreiHAND_pub_v2

The output folder ends with the model and processor (`CLIPHand3DModel.from_pretrained(output_dir)`), the held-out
scores as `metrics.json`, PCK and logit-matrix plots, and a model card (README.md); `checkpoint-{step}` folders
along the way let `--resume_from_checkpoint latest` continue a run that was stopped.
"""

import json
import logging
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from clip_hand3d.evaluation import mean_pose_pa_mpjpe, mean_shape_pa_mpjpe, predict, score_predictions
from clip_hand3d.hub import TrainingRun, hub_api, push_output_dir, redact_token, write_model_card
from clip_hand3d.modeling import CLIPHand3DConfig, CLIPHand3DModel
from clip_hand3d.modeling.losses import LOSS_TERMS
from clip_hand3d.plots import plot_logit_matrices, plot_pck_curves
from clip_hand3d.training.arguments import ABLATIONS, parse_args
from clip_hand3d.training.checkpoints import resume_progress, save_checkpoint
from clip_hand3d.training.crop_cache import hand_samples
from clip_hand3d.training.data import PromptCollator, load_split, model_inputs, training_transform
from clip_hand3d.training.loop import NonFiniteLossGuard, Throughput, optimizer_step, resumed_batches
from clip_hand3d.training.precision import launch_device, log_auto_precision, resolve_mixed_precision
from clip_hand3d.training.pretraining import is_encoder_checkpoint, load_encoder_backbone, read_encoder_info
from clip_hand3d.training.schedules import build_scheduler
from clip_hand3d.variants import load_processor

logger = get_logger(__name__)
STAGE1_FROZEN = ("joint_feature_encoder", "mesh_regressor")


def build_config(args) -> CLIPHand3DConfig:
    """The variant's config with this run's ablation, CLIP batch size and joint offset loss weight."""
    overrides = dict(ABLATIONS[args.ablation])
    if args.clip_batch_size is not None:
        overrides["clip_batch_size"] = args.clip_batch_size
    if args.loss_weight_joint_offsets is not None:
        overrides["loss_weight_joint_offsets"] = args.loss_weight_joint_offsets
    return CLIPHand3DConfig.from_pretrained(model_source(args), **overrides)


def init_encoder(args) -> str | None:
    """The encoder checkpoint (pretrain.py's) that `--init_from` names, or None for a model folder or no --init_from."""
    return args.init_from if args.init_from is not None and is_encoder_checkpoint(args.init_from) else None


def model_source(args) -> str:
    """Where the config and processor come from: the --init_from model folder, else the --config variant (an
    encoder checkpoint holds the backbone only)."""
    return args.init_from if args.init_from is not None and init_encoder(args) is None else args.config


def build_model(args, config: CLIPHand3DConfig) -> CLIPHand3DModel:
    encoder = init_encoder(args)
    if args.init_from is not None and encoder is None:
        return CLIPHand3DModel.from_pretrained(args.init_from, config=config)
    model = CLIPHand3DModel(config)
    if args.pretrained_encoders is not False:
        model.load_pretrained_encoders(
            backbone=False if encoder is not None else args.pretrained_encoders,
            text_model=args.pretrained_encoders if config.use_clip_loss else False,
        )
    if encoder is not None:
        info = load_encoder_backbone(model.backbone, encoder, f"--config {Path(args.config).name}")
        logger.info(f"the backbone starts from the encoder {encoder}: {info.describe()}")
    return model


def warn_about_idle_cpu_cores(accelerator: Accelerator) -> None:
    """Warn when a single CPU process computes on fewer threads than it has cores: `accelerate launch --cpu`
    without `--num_processes 1` sets OMP_NUM_THREADS=1, which halves the speed on two cores."""
    if accelerator.device.type != "cpu" or accelerator.num_processes != 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch.get_num_threads() < cores:
        logger.warning(
            f"training on {torch.get_num_threads()} CPU thread(s) of {cores} cores "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); launch with `accelerate launch --cpu "
            f"--num_processes 1` or `--num_cpu_threads_per_process {cores}` to use them all"
        )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.push_to_hub:
        hub_api(args.hub_token)  # no token: say so now, not after training
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision, launch_device()),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # Stage-1 steps of a two-stage run leave the mesh regressor out of the graph.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=args.stage1_steps > 0)],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    warn_about_idle_cpu_cores(accelerator)
    log_auto_precision(args.mixed_precision, accelerator)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    config = build_config(args)
    model = build_model(args, config)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.stage == 1:
        for name in STAGE1_FROZEN:
            getattr(model, name).requires_grad_(False)
    pretrained_text = (
        args.pretrained_encoders is not False and config.use_pretrained_text_model and config.use_clip_loss
    )
    processor = load_processor(model_source(args), config, config.text_model_name_or_path if pretrained_text else None)

    with accelerator.main_process_first():
        train_rows = load_split(
            args.dataset,
            train=True,
            image_size=config.image_size,
            seed=args.seed,
            num_proc=args.preprocessing_num_workers,
        )
        eval_rows = load_split(
            args.eval_dataset or args.dataset,
            train=False,
            image_size=config.image_size,
            seed=args.seed,
            eval_samples=args.eval_samples,
            num_proc=args.preprocessing_num_workers,
        )
    if args.train_batch_size * accelerator.num_processes > len(train_rows):
        raise ValueError(
            f"--train_batch_size {args.train_batch_size} x {accelerator.num_processes} processes is larger than the "
            f"training data ({len(train_rows)} rows of {args.dataset})"
        )
    train_transform = training_transform(
        processor,
        augment=args.augment,
        two_views=args.two_views and args.stage == 2,
        seed=args.seed,
        degradations=args.augment_degradations,
    )
    eval_transform = training_transform(processor)
    with accelerator.main_process_first():
        train_samples = hand_samples(train_rows, train_transform, num_proc=args.preprocessing_num_workers)
        eval_samples = hand_samples(eval_rows, eval_transform, num_proc=args.preprocessing_num_workers)
    collator = PromptCollator(processor if config.use_clip_loss else None, seed=args.seed)
    train_dataloader = DataLoader(
        train_samples,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collator,
        num_workers=args.dataloader_num_workers,
    )
    eval_dataloader = DataLoader(
        eval_samples,
        batch_size=args.eval_batch_size,
        collate_fn=PromptCollator(processor if config.use_clip_loss else None, seed=args.seed),
        num_workers=args.dataloader_num_workers,
    )

    steps_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_steps = args.max_steps or args.num_epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(
        [parameter for parameter in model.parameters() if parameter.requires_grad],
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
    )
    scheduler = build_scheduler(optimizer, args, max_steps, steps_per_epoch, accelerator.num_processes)
    model, optimizer, train_dataloader, eval_dataloader, scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, scheduler
    )
    if accelerator.is_main_process:
        accelerator.init_trackers("clip-hand3d", config=tracker_config(args))

    progress = resume_progress(accelerator, output_dir, args.resume_from_checkpoint)

    logger.info(
        f"training {args.config} (stage {args.stage}, ablation {args.ablation}) on {len(train_rows)} rows of "
        f"{args.dataset} for {max_steps} steps, batch {args.train_batch_size} x {accelerator.num_processes} processes"
    )
    curve = train_loop(
        args,
        accelerator,
        model,
        optimizer,
        scheduler,
        train_dataloader,
        eval_dataloader,
        train_transform,
        collator,
        progress,
        max_steps,
    )
    accelerator.wait_for_everyone()

    predictions = predict(accelerator.unwrap_model(model), eval_dataloader, accelerator)
    scores = score_predictions(predictions)
    train_joints = np.asarray(train_rows.with_format("numpy")["joints_xyz"])
    scores["mean_pose_pa_mpjpe"] = mean_pose_pa_mpjpe(train_joints, predictions["gt_joints"])
    scores["mean_shape_pa_mpjpe"] = mean_shape_pa_mpjpe(train_joints, predictions["gt_joints"])
    scores["steps"] = progress["global_step"]
    scores["stage2_from_step"] = progress.get("stage2_from_step")
    if accelerator.is_main_process:
        save_outputs(args, accelerator.unwrap_model(model), processor, eval_dataloader, scores, curve, output_dir)
    accelerator.end_training()
    return scores


def train_loop(
    args,
    accelerator,
    model,
    optimizer,
    scheduler,
    train_dataloader,
    eval_dataloader,
    train_transform,
    collator,
    progress,
    max_steps,
) -> list[dict]:
    """Optimise until `max_steps` (or the time budget); updates `progress` in place; returns the logged curve."""
    start = time.monotonic()
    bar = tqdm(
        total=max_steps, initial=progress["global_step"], disable=not accelerator.is_local_main_process, desc="train"
    )
    guard = NonFiniteLossGuard(args.max_consecutive_nan_steps)
    curve = []
    throughput = Throughput()
    model.train()
    # Runs until `max_steps` optimiser steps: steps skipped on a NaN loss are made up in further epochs.
    for batch in resumed_batches(accelerator, train_dataloader, progress, train_transform, collator):
        stage = training_stage(args, accelerator, progress, start)
        with accelerator.accumulate(model):
            outputs = model(**model_inputs(batch, predict_mesh=stage == 2, channels_last=args.channels_last))
            finite = optimizer_step(accelerator, model, optimizer, scheduler, outputs.loss, args.max_grad_norm)
        throughput.add(batch["pixel_values"].shape[0] * accelerator.num_processes)
        if guard.skipped(finite, progress["global_step"]) or not accelerator.sync_gradients:
            continue
        progress["global_step"] += 1
        bar.update(1)
        if progress["global_step"] % args.logging_steps == 0 or progress["global_step"] == max_steps:
            curve.append(log_step(accelerator, outputs, scheduler, progress["global_step"], throughput.read(), bar))
        if args.eval_steps and progress["global_step"] % args.eval_steps == 0:
            curve.append(evaluate_step(accelerator, model, eval_dataloader, progress["global_step"]))
            model.train()
        if progress["global_step"] % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, args.output_dir, dict(progress), args.checkpoints_total_limit)
        if progress["global_step"] >= max_steps or out_of_time(accelerator, start, args.max_train_minutes):
            bar.close()
            return curve


def training_stage(args, accelerator: Accelerator, progress: dict, start: float) -> int:
    """The stage of the next step, 1 or 2. A --stage 2 run trains stage 1 for its first --stage1_steps steps, or
    until --stage2_minutes of its time budget are left, whichever comes first. Once begun, stage 2 lasts: its first
    step is kept in `progress` ("stage2_from_step"), which checkpoints save, so a resumed run stays in it."""
    if args.stage == 1:
        return 1
    if "stage2_from_step" not in progress:
        only_stage2_time_left = args.stage2_minutes is not None and out_of_time(
            accelerator, start, args.max_train_minutes - args.stage2_minutes
        )
        if progress["global_step"] < args.stage1_steps and not only_stage2_time_left:
            return 1
        progress["stage2_from_step"] = progress["global_step"]
        if progress["global_step"] < args.stage1_steps:
            logger.info(
                f"stage 2 starts at step {progress['global_step']} of {args.stage1_steps} planned for stage 1: "
                f"{args.stage2_minutes} of the {args.max_train_minutes} minutes are left for it"
            )
    return 2


def tracker_config(args) -> dict:
    """The run's plain arguments for the trackers (TensorBoard, W&B), without the Hub token."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool)) and k != "hub_token"}


def evaluate_step(accelerator: Accelerator, model, eval_dataloader, step: int) -> dict:
    """Held-out PA-MPJPE and PA-MPVPE (mm) of the model at `step`, logged and returned as a curve record."""
    scores = score_predictions(predict(accelerator.unwrap_model(model), eval_dataloader, accelerator))
    record = {"step": step, "eval_pa_mpjpe": scores["pa_mpjpe"]}
    if "pa_mpvpe" in scores:
        record["eval_pa_mpvpe"] = scores["pa_mpvpe"]
    accelerator.log(record, step=step)
    logger.info(f"step {step}: held-out PA-MPJPE {scores['pa_mpjpe']:.2f} mm")
    return record


def out_of_time(accelerator: Accelerator, start: float, max_minutes: float | None) -> bool:
    """Whether the time budget is spent, agreed by all processes."""
    if max_minutes is None:
        return False
    spent = torch.tensor([time.monotonic() - start > max_minutes * 60], device=accelerator.device)
    return bool(accelerator.gather(spent).any())


def log_step(accelerator, outputs, scheduler, step: int, images_per_second: float, bar) -> dict:
    """Log every loss term, the learning rate and images/s; show them on the progress bar."""
    record = {"step": step, "loss": accelerator.gather(outputs.loss.detach()[None]).mean().item()}
    for name in LOSS_TERMS:
        value = getattr(outputs, name)
        if value is not None:
            record[name] = accelerator.gather(value.detach()[None]).mean().item()
    record["lr"] = scheduler.get_last_lr()[0]
    record["images_per_second"] = images_per_second
    accelerator.log(record, step=step)
    bar.set_postfix({name.removeprefix("loss_"): f"{value:.3g}" for name, value in record.items() if name != "step"})
    return record


def encoder_description(args) -> str | None:
    """What the model card says of the pre-trained encoder the run started from (None without one)."""
    if init_encoder(args) is None:
        return None
    return read_encoder_info(args.init_from).describe(args.init_from)


def save_outputs(args, model, processor, eval_dataloader, scores: dict, curve: list[dict], output_dir: Path) -> None:
    """Model, processor, metrics.json, training curve, plots and the model card."""
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / "metrics.json").write_text(json.dumps(scores, indent=2))
    (output_dir / "training_curve.json").write_text(json.dumps(curve, indent=2))
    plot_pck_curves(
        {"PA joints": (scores["pck_thresholds_mm"], scores["pck_joints"])},
        output_dir / "pck_curve.png",
        title=f"3D PCK on {args.eval_dataset or args.dataset} (held out)",
    )
    if model.config.use_clip_loss and model.text_model is not None:
        batch = next(iter(eval_dataloader))
        with torch.no_grad():
            outputs = model(**model_inputs(batch, predict_mesh=False))
        plot_logit_matrices(outputs.logits_per_pose.float().cpu().numpy(), output_dir / "logit_matrices.png")
    run = TrainingRun(
        config_name=Path(args.config).name,
        dataset=args.dataset,
        eval_dataset=args.eval_dataset or args.dataset,
        stage=args.stage,
        ablation=args.ablation,
        steps=scores["steps"],
        command="accelerate launch train.py " + shlex.join(redact_token(sys.argv[1:])),
        repo_id=args.hub_model_id,
        encoder_init=encoder_description(args),
    )
    write_model_card(output_dir, run, scores)
    if args.push_to_hub:
        push_output_dir(output_dir, args.hub_model_id, token=args.hub_token)
    logger.info(
        f"PA-MPJPE {scores['pa_mpjpe']:.2f} mm (mean pose: {scores['mean_pose_pa_mpjpe']:.2f} mm, aligned mean "
        f"shape: {scores['mean_shape_pa_mpjpe']:.2f} mm); saved to {output_dir}"
    )


if __name__ == "__main__":
    main()
