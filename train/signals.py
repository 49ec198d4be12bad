"""Stopping a run cleanly on SIGINT/SIGTERM: a flag the loop checks after each step.

The loop saves a checkpoint at the step it stopped and :func:`train.loop.fit` raises
:class:`Stopped`; under DDP every process stops at the same step (:func:`agree_on_stop`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


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


@contextmanager
def stop_on_signals() -> Iterator[dict[str, int]]:
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


def agree_on_stop(accelerator: Any, stop: dict[str, int]) -> None:
    """Raise the stop flag everywhere once any process got a signal (all stop at the same step)."""
    flag = torch.tensor([float(stop["signal"] != 0)], device=accelerator.device)
    if accelerator.reduce(flag, "sum").item() > 0 and not stop["signal"]:
        stop["signal"] = int(signal.SIGTERM)
