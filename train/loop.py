"""``fit(config) -> Path``: the AdaIN decoder training loop (paper Sec. 6.2) on HF Accelerate.

The same code runs on one CPU, one GPU, or many GPUs and nodes under ``accelerate launch -m train``
(DDP). The encoder is frozen; only the decoder trains. Reads top to bottom: setup, data, model,
optimiser, resume, loop, save.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

import adain
from adain.architecture import CONTENT_LAYER, STYLE_LAYERS
from adain.decoder import Decoder
from adain.encoder import VGG19Encoder
from adain.functional import adaptive_instance_norm, calc_mean_std
from adain.losses import adain_content_loss, mean_std_loss
from train.config import TrainConfig, check_resumable, override, to_toml
from train.data import ImageSource, PairSource, list_items, make_loader
from train.encoders import build_encoder, encoder_from_state

if TYPE_CHECKING:
    from train.logs import RunLogger
    from train.validation import Validation

logger = logging.getLogger("train")
LATEST = "latest.pt"
CONFIG_FILE = "config.toml"


def lr_at(step: int, lr: float, decay: float) -> float:
    """Inverse decay ``lr / (1 + decay * step)``: pytorch-AdaIN adjust_learning_rate, Lua optim."""
    return lr / (1.0 + decay * step)


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:06d}.pt"


# The checksum. A checkpoint stays one plain ``torch.save`` dict that ``torch.load(...,
# weights_only=True)`` reads (hub/push.py and any other reader need nothing new), with one more
# key, CHECKSUM: the SHA-256 of everything else in it, fed value by value (the raw bytes, dtype
# and shape of each tensor, the repr of each other leaf, dict and list structure in order), so
# loading can recompute it from what it loaded. torch.load does not check the zip's CRCs, so a
# flipped byte in tensor data used to load as a silently wrong (NaN) weight; now any change to
# what a checkpoint holds fails the check, and one that breaks the file's structure fails
# torch.load. A byte that changes nothing loaded is harmless. No sidecar file: latest.pt stays
# a hard link to its ckpt_*.pt, and the checksum travels with the file when it is copied.
CHECKSUM = "sha256"
# The keys of checkpoints written before the checksum existed; such a checkpoint loads unchecked.
# A dict with no checksum and any other key is one whose checksum key was itself damaged.
_UNCHECKED_KEYS = frozenset(
    {"decoder", "encoder", "optimizer", "scheduler", "step", "rng", "config", "data",
     "skipped", "losses", "adain_version"}
)  # fmt: skip
# The files a run writes in its folder besides config.toml, metrics.jsonl, samples/ and model/.
_CHECKPOINT = re.compile(r"ckpt_(\d{6,})\.pt")
# The temporary names of save_checkpoint and train.logs.keep_steps_up_to: ".NAME.tmp-PID".
_TEMPORARY = re.compile(r"\.(ckpt_\d{6,}\.pt|latest\.pt|metrics\.jsonl)\.tmp-\d+")


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest``: tensors by dtype, shape and bytes, containers in order."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {tensor.dtype} {tuple(value.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def state_checksum(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's contents, its :data:`CHECKSUM` entry left out."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != CHECKSUM})
    return digest.hexdigest()


def checkpoint_step(path: Path) -> int | None:
    """The step in a ``ckpt_{step}.pt`` name; ``None`` for any other name."""
    match = _CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The ``ckpt_*.pt`` files in ``folder``, newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if checkpoint_step(path) is not None]
    return sorted(found, key=lambda path: checkpoint_step(path) or 0, reverse=True)


def save_checkpoint(state: dict[str, Any], folder: Path) -> Path:
    """Write ``ckpt_{step}.pt`` with its checksum atomically (temp file + rename), then point
    ``latest.pt`` at it."""
    path = folder / checkpoint_name(state["step"])
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    torch.save({**state, CHECKSUM: state_checksum(state)}, tmp)
    os.replace(tmp, path)
    latest_tmp = folder / f".{LATEST}.tmp-{os.getpid()}"
    latest_tmp.unlink(missing_ok=True)
    try:
        os.link(path, latest_tmp)  # no second copy of the bytes where the filesystem allows
    except OSError:
        import shutil

        shutil.copyfile(path, latest_tmp)
    os.replace(latest_tmp, folder / LATEST)
    return path


def _read_checkpoint(path: Path) -> tuple[dict[str, Any] | None, str]:
    """``(state, "")`` for an intact checkpoint, else ``(None, why)``; never raises."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        return None, f"not a readable checkpoint ({type(error).__name__})"
    if not isinstance(state, dict):
        return None, "not a checkpoint written by train (not a dict)"
    if CHECKSUM in state:
        if state[CHECKSUM] != state_checksum(state):
            return None, "corrupt: its contents do not match the checksum saved with them"
        state = {key: value for key, value in state.items() if key != CHECKSUM}
    elif not set(state) <= _UNCHECKED_KEYS:
        return None, "corrupt: no checksum, and keys no checkpoint has"
    if "decoder" not in state or "step" not in state:
        return None, "not a checkpoint written by train (no decoder/step)"
    return state, ""


def newest_intact(folder: Path, skip: Path | None = None) -> Path | None:
    """The newest ``ckpt_*.pt`` in ``folder`` that loads and passes its checksum."""
    for path in list_checkpoints(folder):
        if skip is not None and path.resolve() == skip.resolve():
            continue
        if _read_checkpoint(path)[0] is not None:
            return path
    return None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its checksum.

    Raises:
        ValueError: one line: no such file, unreadable, or corrupt; it names the newest intact
            ``ckpt_*.pt`` next to it, if any, to use instead.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint")
    state, why = _read_checkpoint(path)
    if state is None:
        intact = newest_intact(path.parent, skip=path)
        if intact is not None:
            why += f"; the newest intact checkpoint is {intact}: use --resume {intact}"
        elif why.startswith("corrupt"):
            why += f"; no intact ckpt_*.pt in {path.parent}: start again with --overwrite"
        raise ValueError(f"{path}: {why}")
    return state


def resolve_resume(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from (``None`` for a fresh run); one-line error if there is none."""
    if not config.resume:
        return None
    if config.resume == "latest":
        folder = Path(config.output)
        latest = folder / LATEST
        if latest.is_file():
            return latest
        found = list_checkpoints(folder)
        if found:
            names = ", ".join(path.name for path in found[:3])
            more = f" and {len(found) - 3} older" if len(found) > 3 else ""
            raise ValueError(
                f"--resume latest: no {LATEST} in {folder}, which holds {names}{more}: "
                f"pick one with --resume {found[0]}"
            )
        what = "no such folder" if not folder.is_dir() else "no checkpoint"
        if (folder / CONFIG_FILE).is_file():
            what = f"no checkpoint, only a {CONFIG_FILE}: the run stopped before its first save"
        raise ValueError(
            f"--resume latest: nothing to resume in {folder} ({what}); start the run without "
            "--resume (with --overwrite if the folder holds a run)"
        )
    path = Path(config.resume)
    if not path.is_file():
        raise ValueError(f"--resume {path}: no such checkpoint (or use --resume latest)")
    return path


def recorded_config(config: TrainConfig) -> tuple[TrainConfig, Path] | None:
    """The config the checkpoint named by ``config.resume`` recorded, and that checkpoint.

    The checkpoint's own config is the authority: it was written in the same atomic save as the
    weights, optimiser state and step it describes, and it travels with the file when resuming
    from a checkpoint path. ``config.toml`` is only a plain-text record, rewritten at each start
    and open to editing; it is never read back. ``None``: not resuming.
    """
    checkpoint = resolve_resume(config)
    if checkpoint is None:
        return None
    recorded = load_checkpoint(checkpoint).get("config")
    if not isinstance(recorded, dict):
        raise ValueError(f"{checkpoint}: no recorded config in this checkpoint")
    try:
        return override(TrainConfig(), recorded), checkpoint
    except ValueError as error:
        raise ValueError(f"{checkpoint}: recorded config: {error}") from None


def check_folder(config: TrainConfig, overwrite: bool = False) -> None:
    """One-line ``ValueError`` unless the run may write in ``config.output``.

    A folder holding checkpoints is a run's: starting there again needs ``--resume`` (continue
    it) or ``overwrite`` (start it again from step 0; not with ``--resume``).
    """
    output = Path(config.output)
    if overwrite and config.resume:
        raise ValueError("--overwrite starts the run again from step 0: drop it or --resume")
    has_run = (output / LATEST).is_file() or bool(list_checkpoints(output))
    if has_run and not config.resume and not overwrite:
        raise ValueError(
            f"{output} holds a run's checkpoints: continue it with --resume latest, or start "
            "again with --overwrite (replaces that run's files)"
        )


def clean_folder(output: Path, overwrite: bool = False) -> None:
    """Delete what a start must not find in its run folder, and never any other file.

    Always the temporary files of a save that a killed run left (``.ckpt_000006.pt.tmp-PID``).
    With ``overwrite``, also the earlier run's checkpoints, sample grids and TensorBoard events;
    its config.toml and metrics.jsonl are rewritten, its model/ replaced at export.
    """
    if not output.is_dir():
        return
    doomed = [path for path in output.iterdir() if _TEMPORARY.fullmatch(path.name)]
    if overwrite:
        doomed += [output / LATEST, *list_checkpoints(output)]
        doomed += (output / "samples").glob("step_*.png")
        doomed += (output / "tensorboard").glob("events.out.tfevents.*")
    for path in doomed:
        path.unlink(missing_ok=True)


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


class Stopped(Exception):  # noqa: N818 (a stop asked for, not an error)
    """A signal stopped the run before ``max_steps``, after saving ``checkpoint``.

    The command line exits with ``128 + signal``: 130 after SIGINT (Ctrl-C), 143 after SIGTERM,
    as a shell reports a process the signal killed, so schedulers and scripts see the run did
    not finish; ``--resume latest`` continues it.
    """

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at step {step}: {checkpoint}; continue with --resume latest"
        )

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class NonFiniteLoss(ValueError):
    """The loss of a step is NaN or infinite; raised before the step changes any weight."""

    def __init__(self, value: float):
        self.value = value
        super().__init__(f"non-finite loss ({value})")


def _all_finite(accelerator: Any, loss: Tensor) -> bool:
    """Whether the loss is finite on every process (all stop together if one is not)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, "sum")
    return bool(bad.item() == 0)


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, int]]:
    """SIGINT/SIGTERM set a flag the loop checks after each step (save, then exit cleanly)."""
    flag = {"signal": 0}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: object) -> None:
        flag["signal"] = signum

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def compute_losses(
    encoder: VGG19Encoder,
    decoder: torch.nn.Module,
    content: Tensor,
    style: Tensor,
    config: TrainConfig,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Paper eq. 11-13: ``L = w_c * L_c + w_s * L_s``; returns ``(loss, parts, output)``.

    ``t = AdaIN(f(c), f(s))`` at relu4_1 (the content target, not ``f(c)``); ``L_c`` is the MSE
    between ``f(g(t))`` and ``t``; ``L_s`` sums the mean/std losses at relu1_1..relu4_1. In
    autoencoder mode ``t = f(c)`` and the style targets are the content's own statistics.
    """
    with torch.no_grad():
        content_feats = encoder(content, STYLE_LAYERS if config.autoencoder else (CONTENT_LAYER,))
        if config.autoencoder:
            style_feats = content_feats
            target = content_feats[CONTENT_LAYER]
        else:
            style_feats = encoder(style, STYLE_LAYERS)
            style_mean, style_std = calc_mean_std(style_feats[CONTENT_LAYER])
            target = adaptive_instance_norm(content_feats[CONTENT_LAYER], style_mean, style_std)
    output = decoder(target)  # (B, 3, S, S)
    out_feats = encoder(output, STYLE_LAYERS)
    parts = {"content": adain_content_loss(out_feats[CONTENT_LAYER], target)}
    for layer in STYLE_LAYERS:
        part = mean_std_loss(out_feats[layer], style_feats[layer])
        if config.style_reduction == "sum":  # Lua: squared errors summed over channels
            part = part * out_feats[layer].shape[1]
        parts[f"style/{layer}"] = part
    style_loss = torch.stack([parts[f"style/{layer}"] for layer in STYLE_LAYERS]).sum()
    parts["style"] = style_loss
    loss = config.content_weight * parts["content"] + config.style_weight * style_loss
    parts["total"] = loss
    return loss, parts, output


def train_step(
    accelerator: Any,
    encoder: VGG19Encoder,
    decoder: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    content: Tensor,
    style: Tensor,
    config: TrainConfig,
) -> tuple[dict[str, Tensor], Tensor]:
    """One optimisation step of the decoder; returns the loss parts and the decoded batch.

    Raises:
        NonFiniteLoss: the loss is NaN or infinite (on any process); nothing was updated.
    """
    with accelerator.autocast():
        loss, parts, output = compute_losses(encoder, decoder, content, style, config)
    if not _all_finite(accelerator, loss):  # one sync per step: a NaN must never reach a weight
        raise NonFiniteLoss(float(loss.detach()))
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return parts, output


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


def _agree_on_stop(accelerator: Any, stop: dict[str, int]) -> None:
    """Raise the stop flag everywhere once any process got a signal (all stop at the same step)."""
    flag = torch.tensor([float(stop["signal"] != 0)], device=accelerator.device)
    if accelerator.reduce(flag, "sum").item() > 0 and not stop["signal"]:
        stop["signal"] = int(signal.SIGTERM)


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
            _agree_on_stop(accelerator, stop)
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
    (:func:`prepare_folder`). SIGINT/SIGTERM stop the run after the current step with a
    checkpoint and raise :class:`Stopped`; ``--resume latest`` continues it bit for bit on CPU.
    A non-finite loss raises a one-line ``ValueError`` naming the step, and saves nothing.
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
        with _stop_on_signals() as stop:
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
