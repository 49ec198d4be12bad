"""``fit(config) -> Path``: the AdaIN decoder training loop (paper Sec. 6.2) on HF Accelerate.

The same code runs on one CPU, one GPU, or many GPUs and nodes under ``accelerate launch -m train``
(DDP). The encoder is frozen; only the decoder trains. Reads top to bottom: setup, data, model,
optimiser, resume, loop, save.

One step is :mod:`train.step`; checkpoint files and the run folder, :mod:`train.checkpoints`;
SIGINT/SIGTERM, :mod:`train.signals`. ``compute_losses`` and ``recorded_config`` are re-exported
for callers that imported them from here before that split.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

import adain
from adain.decoder import Decoder
from adain.encoder import VGG19Encoder
from train.checkpoints import (
    CONFIG_FILE,
    check_folder,
    checkpoint_name,
    clean_folder,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
)
from train.checkpoints import recorded_config as recorded_config  # re-export: see docstring
from train.config import TrainConfig, check_resumable, to_toml
from train.data import ImageSource, PairSource, list_items, make_loader
from train.encoders import build_encoder, encoder_from_state
from train.signals import Stopped, agree_on_stop, stop_on_signals
from train.step import NonFiniteLoss, train_step
from train.step import compute_losses as compute_losses  # re-export: see docstring

if TYPE_CHECKING:
    from train.logs import RunLogger
    from train.validation import Validation

logger = logging.getLogger("train")


def lr_at(step: int, lr: float, decay: float) -> float:
    """Inverse decay ``lr / (1 + decay * step)``: pytorch-AdaIN adjust_learning_rate, Lua optim."""
    return lr / (1.0 + decay * step)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _build_data(config: TrainConfig) -> tuple[PairSource, dict[str, Any]]:
    sources = []
    for stream, what in enumerate(("content", "style")):
        try:
            items = list_items(getattr(config, what), config.image_column)
        except ValueError as error:
            raise ValueError(f"{what}: {error}") from None
        sources.append(
            ImageSource(
                items,
                config.load_size,
                config.crop_size,
                config.min_side,
                config.seed,
                stream,
                config.image_column,
            )
        )
    data = {
        "content": list(config.content),
        "style": list(config.style),
        "content_images": len(sources[0]),
        "style_images": len(sources[1]),
    }
    return PairSource(*sources), data


@dataclass
class _Progress:
    """What a checkpoint records about the run besides the weights; resume restores it."""

    step: int = 0
    skipped: set[str] = field(default_factory=set)  # images skipped so far, by description
    losses: dict[str, float] = field(default_factory=dict)  # the loss parts last logged


@dataclass
class _Run:
    """What the loop steps and a checkpoint saves: the prepared modules and the progress."""

    config: TrainConfig
    accelerator: Any
    encoder: VGG19Encoder
    decoder: torch.nn.Module
    optimizer: Any
    scheduler: Any
    data: dict[str, Any]
    progress: _Progress


def _build_optimizer(decoder: torch.nn.Module, config: TrainConfig) -> tuple[Any, Any]:
    """Adam on the decoder, with the inverse decay of :func:`lr_at` applied per step."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, 1.0, config.lr_decay)
    )
    return optimizer, scheduler


def _resume(
    state: dict[str, Any], path: Path, decoder: torch.nn.Module, optimizer: Any, scheduler: Any
) -> _Progress:
    """Load a checkpoint into the (unprepared) decoder, optimiser, scheduler and the RNGs."""
    try:
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path} does not match this config (base_channels?): "
            f"{str(error).strip().splitlines()[0]}"
        ) from None
    scheduler.load_state_dict(state["scheduler"])
    progress = _Progress(state["step"], set(state["skipped"]), state["losses"])
    _set_rng_state(state["rng"])
    logger.info("resumed from %s at step %d", path, progress.step)
    return progress


def _checkpoint(run: _Run) -> Path:
    """Save the run on the main process; every process returns the same path."""
    progress, output = run.progress, Path(run.config.output)
    state = {
        "decoder": run.accelerator.unwrap_model(run.decoder).state_dict(),
        "encoder": run.encoder.state_dict(),  # makes export self-contained (no re-download)
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "step": progress.step,
        "rng": _rng_state(),
        "config": asdict(run.config),
        "data": {**run.data, "skipped": len(progress.skipped)},
        "skipped": sorted(progress.skipped),
        "losses": progress.losses,
        "adain_version": adain.__version__,
    }
    if run.accelerator.is_main_process:
        return save_checkpoint(state, output)
    return output / checkpoint_name(progress.step)


def _train_steps(
    run: _Run,
    loader: Iterable[tuple[Tensor, Tensor, list[str]]],
    log: RunLogger,
    stop: dict[str, int],
    last: Path | None,
    validation: Validation | None = None,
) -> Path | None:
    """Step until ``max_steps`` or a signal; return the last checkpoint (``last`` if none new).

    A run that trained at least one step always ends with a checkpoint of its final step,
    except one stopped by a non-finite loss: that raises a one-line ``ValueError`` naming the
    step, and saves nothing (the weights are those of the step before, already NaN-free).
    """
    config, accelerator, progress = run.config, run.accelerator, run.progress
    encoder, decoder, optimizer, scheduler = run.encoder, run.decoder, run.optimizer, run.scheduler
    device = accelerator.device
    start_step = progress.step
    batches = iter(loader)
    tick, images = time.perf_counter(), 0
    while progress.step < config.max_steps and not stop["signal"]:
        content, style, bad = next(batches)
        progress.skipped.update(bad)
        content = content.to(device, non_blocking=True)
        style = style.to(device, non_blocking=True)
        try:
            parts, out = train_step(
                accelerator, encoder, decoder, optimizer, scheduler, content, style, config
            )
        except NonFiniteLoss as error:
            saved = f"the last checkpoint is {last}" if last else "no checkpoint was saved"
            raise ValueError(
                f"step {progress.step + 1}: {error}; the run stopped there without saving it "
                f"({saved})"
            ) from None
        progress.step += 1
        step = progress.step
        images += content.shape[0] * accelerator.num_processes
        if config.log_every and (step % config.log_every == 0 or step == config.max_steps):
            progress.losses = {k: float(v.detach()) for k, v in parts.items()}
            rate = images / max(time.perf_counter() - tick, 1e-9)
            lr = scheduler.get_last_lr()[0]
            log.scalars(step, progress.losses, lr, rate, len(progress.skipped))
            tick, images = time.perf_counter(), 0
        if config.sample_every and step % config.sample_every == 0:
            log.samples(step, content, style, out)
        if validation is not None and validation.due(step):
            validation.run(step, encoder, accelerator.unwrap_model(decoder), log)
        if accelerator.num_processes > 1:
            agree_on_stop(accelerator, stop)
        if config.save_every and step % config.save_every == 0:
            last = _checkpoint(run)
    if progress.step > start_step:
        progress.losses = {k: float(v.detach()) for k, v in parts.items()}
        if last is None or Path(last).name != checkpoint_name(progress.step):
            last = _checkpoint(run)
    return last


def fit(config: TrainConfig, overwrite: bool = False) -> Path:
    """Train a decoder; return the last checkpoint written (``<output>/ckpt_{step}.pt``).

    A folder that holds a run's checkpoints needs ``config.resume`` or ``overwrite``
    (:func:`train.checkpoints.check_folder`). SIGINT/SIGTERM stop the run after the current step
    with a checkpoint and raise :class:`Stopped`; ``--resume latest`` continues it bit for bit on
    CPU. A non-finite loss raises a one-line ``ValueError`` naming the step, and saves nothing.
    """
    from accelerate import Accelerator

    config.validate()
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    output = Path(config.output)
    main = accelerator.is_main_process
    check_folder(config, overwrite)  # on every process, so that all of them stop
    resume_from = resolve_resume(config)
    state: dict[str, Any] = {}
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        if "config" in state:  # before writing anything, as for the sources next
            check_resumable(config, state["config"], resume_from)
    pairs, data = _build_data(config)  # before writing anything: bad sources fail fast
    validation = None
    if config.eval_every and main:  # the main process alone measures and logs
        from train.validation import Validation

        validation = Validation(config)
    if main:
        clean_folder(output, overwrite)
        output.mkdir(parents=True, exist_ok=True)
        (output / CONFIG_FILE).write_text(to_toml(config), encoding="utf-8")

    if "encoder" in state:  # resuming: the very weights trained against, and no download
        encoder = encoder_from_state(state["encoder"], str(resume_from), config.base_channels)
    else:
        encoder = build_encoder(config.encoder, config.base_channels)
    encoder = encoder.to(accelerator.device)
    torch.manual_seed(config.seed)  # after the encoder: loading it must not shift the init
    decoder = Decoder(config.base_channels)
    optimizer, scheduler = _build_optimizer(decoder, config)
    progress = _Progress()
    if resume_from is not None:
        progress = _resume(state, resume_from, decoder, optimizer, scheduler)
        state = {}  # the loaded tensors are copied in now; do not hold them for the whole run
    decoder, optimizer = accelerator.prepare(decoder, optimizer)
    loader = make_loader(
        pairs,
        config.batch_size,
        progress.step,
        config.num_workers,
        accelerator.process_index,
        accelerator.num_processes,
        pin_memory=accelerator.device.type == "cuda",
    )
    run = _Run(config, accelerator, encoder, decoder, optimizer, scheduler, data, progress)

    from train.logs import RunLogger

    log = RunLogger(output, config, progress.step, enabled=main)
    try:
        with stop_on_signals() as stop:
            last = _train_steps(run, loader, log, stop, resume_from, validation)
    finally:
        log.close()
    accelerator.wait_for_everyone()
    if last is None:  # max_steps == 0 on a fresh run: nothing trained, still a checkpoint
        last = _checkpoint(run)
    if progress.skipped:
        logger.warning("skipped %d unreadable or too small images", len(progress.skipped))
    if stop["signal"] and progress.step < config.max_steps:
        raise Stopped(stop["signal"], progress.step, Path(last))
    return Path(last)
