"""Inference runtime: allocator tuning, memory layout, precision and torch.compile for AdaIN.

:class:`Runner` wraps a model's relu4_1 encoder and decoder with the speed paths that pay on the
device at hand, and falls back to eager fp32 wherever a path is unavailable. Every path keeps the
output within :data:`TOLERANCE` of eager fp32 (``tests/test_runtime.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor

from adain.encoder import CONTENT_LAYER
from adain.model import AdaIN

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Largest |difference| to eager fp32 on images in [0, 1], per path; measured on seeded random
# models (tests/test_runtime.py), with margin. Reduced precision rounds every activation.
TOLERANCE: dict[str, float] = {"fp32": 1e-4, "channels_last": 1e-4, "compile": 1e-3, "bf16": 6e-2}
TOLERANCE["fp16"] = 1e-2

# glibc mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's default M_MMAP_MAX.
_DEFAULT_MMAP_MAX = 65536
# Keep up to this much freed memory at the top of the heap instead of returning it to the OS.
_TRIM_THRESHOLD = 1 << 30
# mallopt, once tune_allocator has applied (None: the allocator is as the process started).
_mallopt: Callable[[int, int], int] | None = None


def tune_allocator() -> bool:
    """Keep freed activation memory in the process (glibc only); returns whether it applied.

    By default glibc serves each allocation above 32 MiB with a fresh ``mmap`` and unmaps it on
    free, so every large activation of a forward pass page-faults its memory back in: on 2 CPU
    cores that is ~45 % of the wall time of a 512 px stylisation (REFERENCE.md section 7).
    Serving large blocks from the heap (``M_MMAP_MAX = 0``) and trimming it only above 1 GiB
    removes that system time for ~10-20 % more peak RSS. ``mallopt`` works at run time, so the
    ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` variables (read only at process
    start) and a re-exec are not needed. The setting is process-wide: call it from entry points
    (the CLI, benchmarks), not from library code.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and ok
    if ok:
        global _mallopt
        _mallopt = mallopt
    return ok


@contextlib.contextmanager
def long_lived_allocations() -> Iterator[None]:
    """Serve the large allocations made inside from ``mmap`` again, as glibc does by default.

    For buffers that outlive many forward passes (a tiled image's output and kept features):
    on the heap that :func:`tune_allocator` sets up they would sit between the activations of
    successive tiles and fragment it. Peak RSS growth of a 2048 px run in 1 GiB tiles went from
    1320 to 1169 MiB with these two buffers outside the heap. A no-op unless
    :func:`tune_allocator` applied.
    """
    if _mallopt is None:
        yield
        return
    _mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    try:
        yield
    finally:
        _mallopt(_M_MMAP_MAX, 0)


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


class Runner:
    """The speed paths around one model's relu4_1 encoder and decoder.

    Args:
        model: the :class:`AdaIN` to run (not modified, except moved to ``device`` and, with
            ``channels_last``, re-laid out; its state dict keys stay the same).
        device: where to run.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (statistics stay fp32).
        channels_last: NHWC layout; ``None`` picks it where it measured faster (CPU: ~0.8x the
            time at 512 px, REFERENCE.md section 7; CUDA with reduced precision: tensor cores).
        compile: wrap the encoder and decoder in ``torch.compile``; if compiling fails (no C++
            compiler, unsupported backend) the runner warns once and stays eager.

    Note:
        torch.compile took ~0.7-0.8x eager time at 512 px on 2 CPU cores, but ~1 minute per new
        input shape to compile there, so it is off by default and pays only over many images
        of one size (batches, video frames).
    """

    def __init__(
        self,
        model: AdaIN,
        device: torch.device | str = "cpu",
        precision: Precision = "fp32",
        channels_last: bool | None = None,
        compile: bool = False,
    ):
        self.device = torch.device(device)
        self.precision = check_precision(precision, self.device)
        if channels_last is None:
            channels_last = self.device.type == "cpu" or (
                self.device.type == "cuda" and precision != "fp32"
            )
        self.channels_last = channels_last
        self.model = model.to(self.device).eval()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._encode: Callable[[Tensor], Tensor] = self._eager_encode
        self._decode: Callable[[Tensor], Tensor] = self.model.decoder
        self.compiled = False
        if compile:
            self._encode = torch.compile(self._eager_encode, dynamic=False)
            self._decode = torch.compile(self.model.decoder, dynamic=False)
            self.compiled = True

    @property
    def eps(self) -> float:
        return self.model.eps

    def _eager_encode(self, image: Tensor) -> Tensor:
        return self.model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER]

    def _layout(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _call(self, fn_name: str, x: Tensor) -> Tensor:
        fn = getattr(self, fn_name)
        try:
            with precision_context(self.device, self.precision):
                out = fn(self._layout(x))
        except Exception as error:  # compile backends raise many error types
            if not self.compiled:
                raise
            logger.warning("torch.compile failed (%s); running eagerly", error)
            self.compiled = False
            self._encode, self._decode = self._eager_encode, self.model.decoder
            return self._call(fn_name, x)
        return out.float()

    def encode(self, image: Tensor) -> Tensor:
        """relu4_1 features ``(B, C, H/8, W/8)`` in fp32 of a ``(B, 3, H, W)`` image in [0, 1]
        whose sides are multiples of 8."""
        return self._call("_encode", image)

    def decode(self, feats: Tensor) -> Tensor:
        """Image ``(B, 3, 8h, 8w)`` in fp32 (unclamped) from relu4_1 features."""
        return self._call("_decode", feats)
