"""Run logging: progress bar, ``metrics.jsonl``, TensorBoard scalars and sample grids.

TensorBoard is optional (``pip install 'adain[train]'``); without it the scalars still go to
``metrics.jsonl`` and the sample grids to ``samples/`` as PNG files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from train.config import TrainConfig

logger = logging.getLogger("train")
_SAMPLES = 4  # images per grid row set: content | style | output for the first few of the batch


def keep_steps_up_to(path: Path, step: int) -> None:
    """Drop the records of ``metrics.jsonl`` after ``step`` (and any torn line), atomically.

    A run resumed at ``step`` logs the later steps again: each step then appears once, the one
    of the run that the checkpoints continue. A fresh start (step 0) empties the file.
    """
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a killed run
        if line.endswith("\n") and isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    if kept == lines:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


class RunLogger:
    """Writes what a run reports; every method is a no-op where ``enabled`` is false (rank > 0).

    Starting at ``start_step`` (a resume), the steps after it are dropped from ``metrics.jsonl``
    and TensorBoard (``purge_step``): a step logged by a run that died before saving it appears
    once, as logged again.
    """

    def __init__(self, folder: Path, config: TrainConfig, start_step: int, enabled: bool = True):
        self.folder, self.enabled = folder, enabled
        self.writer: Any = None
        self.bar: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            logger.info("tensorboard is not installed: scalars go to metrics.jsonl only")
        from tqdm.auto import tqdm

        self.bar = tqdm(total=config.max_steps, initial=start_step, unit="step", dynamic_ncols=True)
        keep_steps_up_to(folder / "metrics.jsonl", start_step)
        self.metrics = open(folder / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def scalars(
        self, step: int, losses: dict[str, float], lr: float, images_per_s: float, skipped: int
    ) -> None:
        if not self.enabled:
            return
        record = {
            "step": step,
            **losses,
            "lr": lr,
            "images_per_s": images_per_s,
            "skipped": skipped,
        }
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            self.writer.add_scalar("lr", lr, step)
            self.writer.add_scalar("images_per_s", images_per_s, step)
            self.writer.add_scalar("skipped_images", skipped, step)
        self.bar.set_postfix(loss=f"{losses['total']:.4g}", img_s=f"{images_per_s:.3g}")
        self.bar.update(step - self.bar.n)

    def samples(self, step: int, content: Tensor, style: Tensor, output: Tensor) -> None:
        """One row per sample: content | style | output, clamped to [0, 1]."""
        if not self.enabled:
            return
        from torchvision.utils import make_grid

        n = min(_SAMPLES, content.shape[0])
        rows = torch.stack([content[:n], style[:n], output[:n].detach().float()], dim=1)
        grid = make_grid(rows.flatten(0, 1).clamp(0, 1).cpu(), nrow=3, padding=2)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)
        else:
            from adain.image import save_image

            save_image(grid, self.folder / "samples" / f"step_{step:06d}.png")
        self.bar.update(step - self.bar.n)

    def validation(
        self, step: int, means: dict[str, float], content: Tensor, style: Tensor, output: Tensor
    ) -> None:
        """The validation pairs' mean metrics (``eval/NAME``) and a content | style | output grid
        of every pair (``samples/step_{step}_eval.png`` without TensorBoard)."""
        if not self.enabled:
            return
        self.metrics.write(json.dumps({"step": step, "eval": means}) + "\n")
        self.metrics.flush()
        from torchvision.utils import make_grid

        rows = torch.stack([content, style, output.float()], dim=1)
        grid = make_grid(rows.flatten(0, 1).clamp(0, 1).cpu(), nrow=3, padding=2)
        if self.writer is not None:
            for name, value in means.items():
                self.writer.add_scalar(f"eval/{name}", value, step)
            self.writer.add_image("eval/samples", grid, step)
        else:
            from adain.image import save_image

            save_image(grid, self.folder / "samples" / f"step_{step:06d}_eval.png")

    def close(self) -> None:
        if not self.enabled:
            return
        self.bar.close()
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()
