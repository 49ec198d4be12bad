"""What a batch is asked to do (:class:`BatchConfig`), and the checks of its option values.

These checks read no file, so :func:`adain.batch.plan` and :func:`adain.batch.save_preset` run
them first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adain.image import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class BatchConfig:
    """Everything a ``stylize`` batch needs; option names match the CLI's.

    ``None`` and 0 sizes keep the input size (see :func:`adain.api.stylize`).
    """

    contents: Sequence[str | Path]
    styles: Sequence[str | Path]
    output: Path | None = None  # a file for a single output, else a folder (default: cwd)
    alpha: float = 1.0  # paper eq. 14; any finite value >= 0
    weights: Sequence[float] | None = None  # one per style: one interpolated style
    masks: Sequence[str | Path] | None = None  # one per style: spatial control
    preserve_color: Literal["coral", "luminance"] | None = None
    content_size: int | None = None
    style_size: int | None = None
    max_size: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    overwrite: bool = False  # replace existing outputs
    skip_existing: bool = False  # keep existing outputs, write only the missing ones
    quality: int | None = None
    ext: str = ".png"  # format of the files written into an output folder
    tile: int | None = (
        None  # tile side in px; None: automatic above max_memory (adain.engine.strips)
    )
    max_memory: str | None = None  # e.g. "3G"; None: adain.engine.plan.DEFAULT_MAX_MEMORY
    precision: str = "fp32"  # fp32, or bf16/fp16 on GPUs (adain.engine.runner)
    transfer: str = "adain"  # adain (mean and std) or efdm (whole distribution, adain.efdm)
    backend: str = "torch"  # torch (the engine) or onnxruntime (exported graphs, adain.export)
    onnx: Path | None = None  # with onnxruntime: an `adain export` folder; None: the cache's


def _check_backend(config: BatchConfig) -> None:
    """What ``--backend onnxruntime`` cannot do, refused before the model loads."""
    if config.backend not in ("torch", "onnxruntime"):
        raise ValueError(f"--backend must be torch or onnxruntime, got {config.backend!r}")
    if config.backend == "torch":
        if config.onnx is not None:
            raise ValueError("--onnx names exported graphs for --backend onnxruntime: add it")
        return
    if config.masks:
        raise ValueError(
            "--mask needs --backend torch: the ONNX decoder applies one style or one mix (--weight)"
        )
    if config.precision not in ("fp32", "fp16"):
        raise ValueError("--backend onnxruntime runs --precision fp32 or fp16 graphs")
    if config.transfer != "adain":
        raise ValueError(f"--transfer {config.transfer} needs --backend torch")
    if config.tile is not None or config.max_memory is not None:
        raise ValueError("--tile and --max-memory set how --backend torch runs: drop them")
    if config.device not in ("auto", "cpu"):
        raise ValueError(
            f"--backend onnxruntime runs on the CPU, not {config.device}: --device cpu"
        )


def check_options(config: BatchConfig, num_styles: int) -> None:
    if not math.isfinite(config.alpha) or config.alpha < 0:
        raise ValueError(f"--alpha must be a number >= 0 (1 = full style), got {config.alpha}")
    if config.weights is not None:
        if len(config.weights) != num_styles:
            raise ValueError(
                f"got {len(config.weights)} --weight values for {num_styles} styles: "
                "give one --weight per style"
            )
        weights = list(config.weights)
        if any(not (w >= 0 and math.isfinite(w)) for w in weights) or not sum(weights):
            raise ValueError(f"--weight values must be >= 0 with a positive sum, got {weights}")
    if config.masks is not None and len(config.masks) != num_styles:
        raise ValueError(
            f"got {len(config.masks)} --mask files for {num_styles} styles: give one mask per style"
        )
    if config.masks is not None and config.weights is not None:
        raise ValueError("give either --weight (interpolation) or --mask (regions), not both")
    for name in ("content_size", "style_size", "max_size"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0 (0 keeps), got {value}")
    if config.max_pixels is not None and config.max_pixels <= 0:
        raise ValueError(f"--max-pixels must be > 0, got {config.max_pixels}")
    if config.quality is not None and not 1 <= config.quality <= 100:
        raise ValueError(f"--quality must be between 1 and 100, got {config.quality}")
    if config.overwrite and config.skip_existing:
        raise ValueError(
            "give either --overwrite (replace existing outputs) or --skip-existing (keep them "
            "and write only the missing ones), not both"
        )
    if config.precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"--precision must be fp32, bf16 or fp16, got {config.precision!r}")
    if config.transfer not in ("adain", "efdm"):
        raise ValueError(f"--transfer must be adain or efdm, got {config.transfer!r}")
    _check_backend(config)
    if config.tile is not None or config.max_memory is not None:
        from adain.architecture import DOWNSAMPLING
        from adain.engine.plan import MIN_TILE_CELLS, parse_memory

        if config.tile is not None and config.tile < MIN_TILE_CELLS * DOWNSAMPLING:
            raise ValueError(
                f"--tile must be at least {MIN_TILE_CELLS * DOWNSAMPLING} px, got {config.tile}"
            )
        if config.max_memory is not None:
            parse_memory(config.max_memory)
