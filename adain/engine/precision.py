"""Reduced precision: which precisions run where, and the autocast region they run in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Largest |difference| to eager fp32 on images in [0, 1], per path; measured on seeded random
# models (tests/test_runner.py), with margin. Reduced precision rounds every activation.
TOLERANCE: dict[str, float] = {"fp32": 1e-4, "channels_last": 1e-4, "compile": 1e-3, "bf16": 6e-2}
TOLERANCE["fp16"] = 1e-2


def check_precision(precision: str, device: torch.device) -> Precision:
    """Validate ``precision`` for ``device``: fp16 needs a GPU; bf16 runs anywhere but only pays
    on GPUs (it was ~2x slower than fp32 on the 2-core reference CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' needs a GPU: use fp32 (or bf16) on the CPU")
    return precision  # type: ignore[return-value]


@contextlib.contextmanager
def precision_context(device: torch.device, precision: Precision) -> Iterator[None]:
    """Autocast to ``precision`` on ``device`` (fp32: no autocast)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield
