"""A run's checkpoint files: saving with a checksum, finding, checking and resuming them.

A run folder holds ``ckpt_{step:06d}.pt`` files and ``latest.pt`` (a hard link to the newest),
each written atomically (temp file + rename). This module also guards the folder when a run
starts: :func:`check_folder` refuses to write over another run, :func:`clean_folder` removes
what a killed save left. What a checkpoint holds is assembled by :mod:`train.loop`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch

from train.config import TrainConfig, override

LATEST = "latest.pt"
CONFIG_FILE = "config.toml"


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
