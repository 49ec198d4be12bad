"""Batch stylisation: expand inputs, plan output names, encode each style once, stylise each pair.

``plan()`` does every check that needs no model (option values, output names, nothing
overwritten by accident, and every input decoded once in full), so a bad batch fails before it
writes anything. ``run()`` then loads the model once, encodes each style once and yields one
record per output; with ``skip_existing`` a re-run finishes only the outputs that are missing.
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from adain.image import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    load_image,
    load_mask,
    read_size,
    resized_size,
    save_format,
    save_image,
)
from adain.model import MIN_SIDE
from adain.outputs import (
    TEMPORARY_EXTRA_BYTES,
    check_output,
    remove_if_abandoned,
    temporary_file_of,
)
from adain.style import is_style_preset

PRESET_SUFFIX = ".safetensors"
# Output names list the styles of a mix up to this many, then count the rest.
_MAX_NAMED_STYLES = 3
_NAME_MAX = 255  # bytes: Linux, macOS and Windows file systems, where pathconf cannot tell


def _is_hidden(path: Path) -> bool:
    # save_image's temporary files start with a dot: never take them (or .git etc.) as inputs.
    return any(part.startswith(".") and part not in (".", "..") for part in path.parts)


def expand_paths(items: Sequence[str | Path], what: str, presets: bool = False) -> list[Path]:
    """Files, folders (recursive) and glob patterns -> a sorted, duplicate-free list of files.

    Args:
        items: what the user typed; a path that exists is taken as it is, before any globbing.
        what: ``"content"``, ``"style"``..., used in the error messages.
        presets: also collect ``.safetensors`` style presets from folders and globs.

    Raises:
        ValueError: an item that matches nothing, or a folder without images.
    """
    suffixes = IMAGE_SUFFIXES + ((PRESET_SUFFIX,) if presets else ())
    kinds = ", ".join(suffixes)
    found: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not _is_hidden(p.relative_to(path))
            )
            if not matches:
                raise ValueError(f"{what} folder {item} has no files ending in {kinds}")
        elif glob.has_magic(str(item)):
            matches = sorted(
                Path(p)
                for p in glob.glob(str(path), recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in suffixes
            )
            if not matches:
                raise ValueError(f"{what} pattern {item!r} matches no files ending in {kinds}")
        else:
            raise ValueError(f"{what} {item}: no such file or folder")
        found.extend(m for m in matches if m not in found)
    return found


@dataclass(frozen=True)
class Job:
    """One output: a content image, the indices of its styles in the batch, and where it goes."""

    content: Path
    styles: tuple[int, ...]
    output: Path
    skip: bool = False  # the output exists and skip_existing keeps it


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


@dataclass(frozen=True)
class Plan:
    """The checked batch: resolved inputs and one :class:`Job` per output file."""

    config: BatchConfig
    styles: list[Path]
    masks: list[Path]
    jobs: list[Job] = field(default_factory=list)


def _check_options(config: BatchConfig, num_styles: int) -> None:
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


def _output_names(config: BatchConfig, contents: list[Path], styles: list[Path]) -> list[Job]:
    if config.weights is not None or config.masks is not None:
        combos = [(c, tuple(range(len(styles)))) for c in contents]
    else:
        combos = [(c, (k,)) for c in contents for k in range(len(styles))]
    output = config.output if config.output is not None else Path(".")
    if output.suffix and not output.is_dir():
        if len(combos) != 1:
            raise ValueError(
                f"this batch makes {len(combos)} images: -o must be a folder, not {output}"
            )
        save_format(output)
        return [Job(combos[0][0], combos[0][1], output)]
    ext = config.ext if config.ext.startswith(".") else f".{config.ext}"
    save_format(Path(f"x{ext}"))
    taken: set[Path] = set()
    jobs = []
    for content, picked in combos:
        names = [styles[k].stem for k in picked]
        if len(names) > _MAX_NAMED_STYLES:  # keep file names short with many mixed styles
            names = [*names[:2], f"{len(names) - 2}-more"]
        stem = f"{content.stem}_{'+'.join(names)}"
        path, n = output / f"{stem}{ext}", 1
        while path in taken:  # same stems from different folders: number them, never merge
            n += 1
            path = output / f"{stem}-{n}{ext}"
        taken.add(path)
        jobs.append(Job(content, picked, path))
    return jobs


def _name_max(folder: Path) -> int:
    """The longest file name in bytes on the file system of ``folder`` (or of the nearest
    existing folder above it: outputs may go to a folder not made yet)."""
    for parent in (folder, *folder.parents):
        if parent.is_dir():
            try:
                limit = os.pathconf(parent, "PC_NAME_MAX")
            except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
                return _NAME_MAX
            return limit if limit > 0 else _NAME_MAX
    return _NAME_MAX


def _check_outputs(config: BatchConfig, jobs: list[Job], inputs: list[Path]) -> list[Job]:
    """Check each output's name and place; mark those to keep with ``skip_existing``."""
    limits: dict[Path, int] = {}
    single = len(jobs) == 1 and jobs[0].output == config.output
    checked = []
    for job in jobs:
        folder = Path(os.path.abspath(job.output.parent))
        if folder not in limits:
            limits[folder] = _name_max(folder) - TEMPORARY_EXTRA_BYTES
        limit = limits[folder]
        size = len(os.fsencode(job.output.name))
        if size > limit:  # its temporary file needs the extra bytes too
            fix = (
                "choose a shorter -o file name"
                if single
                else f"give {job.content.name} or the style files a shorter stem"
            )
            raise ValueError(
                f"{job.output}: the file name is {size} bytes, over the {limit} bytes this file "
                f"system allows an output; {fix}"
            )
        check_output(job.output, inputs, overwrite=True)  # never an input, never a folder
        if job.output.exists() or job.output.is_symlink():
            if config.skip_existing:
                job = replace(job, skip=True)
            elif not config.overwrite:
                raise ValueError(
                    f"{job.output} already exists: pass --skip-existing to write only the "
                    "missing outputs, --overwrite to replace them, or choose another -o"
                )
        checked.append(job)
    return checked


def _decoded_size(
    path: Path, max_pixels: int | None, sizes: dict[Path, tuple[int, int]]
) -> tuple[int, int]:
    """Decode ``path`` in full once (truncated or corrupt data fails here), keep only its size."""
    if path not in sizes:
        image = load_image(path, max_pixels)
        sizes[path] = image.size
        del image  # one decoded image in memory at a time
    return sizes[path]


def _check_decoded(
    path: Path,
    what: Literal["content", "style"],
    config: BatchConfig,
    sizes: dict[Path, tuple[int, int]],
) -> None:
    """The size ``run`` gives the image (after the resize options) is one the model takes."""
    width, height = _decoded_size(path, config.max_pixels, sizes)
    if what == "content":
        after = resized_size(width, height, config.content_size, config.max_size)
        options = "--content-size or --max-size"
    else:
        after = resized_size(width, height, config.style_size)
        options = "--style-size"
    if config.max_pixels is not None and after[0] * after[1] > max(
        config.max_pixels, width * height
    ):
        raise ValueError(
            f"{path}: resizing {width}x{height} px to {after[0]}x{after[1]} px is over the limit "
            f"of {config.max_pixels:,} pixels; choose a smaller {options} or raise --max-pixels"
        )
    if min(after) < MIN_SIDE:
        resized = "" if after == (width, height) else f" ({after[0]}x{after[1]} px resized)"
        raise ValueError(
            f"{what} {path} is {width}x{height} px{resized}; AdaIN needs at least {MIN_SIDE} px "
            f"a side: use a larger image or a larger {options}"
        )


def plan(config: BatchConfig) -> Plan:
    """Check a batch without loading the model; raise ``ValueError`` with a one-line fix.

    Every content x style pair makes one output; with ``weights`` or ``masks`` each content
    makes one output from all the styles. Checks run cheapest first: options, input headers
    (exists, is an image, under ``max_pixels``), output names (under the file system's name
    limit, never one of the inputs; an existing output needs ``overwrite`` or is kept with
    ``skip_existing``), then every input that a written output needs is decoded in full, one at
    a time, and its size after the resize options must be at least ``MIN_SIDE`` a side.

    Note:
        The full decode costs one extra decode per image (it is decoded again in ``run``),
        so a corrupt file stops the batch before its first output rather than midway.
    """
    contents = expand_paths(config.contents, "content")
    styles = expand_paths(config.styles, "style", presets=True)
    masks = [Path(m) for m in config.masks] if config.masks is not None else []
    _check_options(config, len(styles))
    for path in contents:
        if is_style_preset(path):
            raise ValueError(f"{path} is a style preset: give it with --style, not as content")
        read_size(path, config.max_pixels)
    for path in styles:
        if is_style_preset(path):
            if config.preserve_color == "coral":
                raise ValueError(
                    f"--preserve-color coral recolours style images, and {path} is a preset: "
                    "give the style image or use --preserve-color luminance"
                )
            if not path.is_file():
                raise ValueError(f"style preset {path} does not exist")
            if config.transfer == "efdm":
                _check_efdm_preset(path)
        else:
            read_size(path, config.max_pixels)
    for path in masks:
        if not path.is_file():
            raise ValueError(f"mask {path}: no such file")
        read_size(path, config.max_pixels)
    jobs = _output_names(config, contents, styles)
    jobs = _check_outputs(config, jobs, [*contents, *styles, *masks])
    todo = [job for job in jobs if not job.skip]
    sizes: dict[Path, tuple[int, int]] = {}  # decoded once, even if both content and style
    for path in dict.fromkeys(job.content for job in todo):
        _check_decoded(path, "content", config, sizes)
    if todo:
        for path in styles:
            if not is_style_preset(path):
                _check_decoded(path, "style", config, sizes)
        for path in masks:
            _decoded_size(path, config.max_pixels, sizes)
    return Plan(config, styles, masks, jobs)


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


def _check_efdm_preset(path: Path) -> None:
    from adain.style import StyleStats

    if StyleStats.load(path).quantiles is None:
        raise ValueError(
            f"style preset {path} holds only AdaIN's mean and std: make it again with "
            "`adain style-encode --transfer efdm`, or give the style image"
        )


def _remove_stale_temporaries(outputs: list[Path]) -> None:
    """Remove the temporary files a killed run left for these outputs, and nothing else."""
    names: dict[Path, set[str]] = {}
    for output in outputs:
        names.setdefault(output.parent, set()).add(output.name)
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not made yet: nothing to remove
            continue
        for entry in entries:
            if temporary_file_of(entry.name) in wanted and entry.is_file(follow_symlinks=False):
                remove_if_abandoned(entry.path)  # not another run's file in the making


def _skipped(batch: Plan, job: Job) -> dict[str, Any]:
    return {
        "output": str(job.output),
        "content": str(job.content),
        "styles": [str(batch.styles[k]) for k in job.styles],
        "skipped": True,
    }


def run(batch: Plan) -> Iterator[dict[str, Any]]:
    """Load the model once, encode each style once, and stylise every job of the plan.

    Yields one JSON-able record per output, in the plan's order. An output written (atomically,
    by ``save_image``) gives ``output``, ``content``, ``styles``, ``weights``, ``alpha``,
    ``width``, ``height``, ``content_width``, ``content_height``, ``seconds`` (this output's
    stylisation and save) and ``skipped: False``; one kept by ``skip_existing`` (it existed at
    planning, or appeared since) gives ``output``, ``content``, ``styles`` and ``skipped: True``.
    Before writing, the temporary files that a killed run left for the outputs to write are
    removed (``.NAME.<8 hex>.tmp`` beside ``NAME``, see :func:`adain.outputs.write_atomically`).
    The model is not loaded when every output is skipped.

    Note:
        With ``preserve_color="coral"`` a style's colours are matched to each content before it
        is encoded, so styles are encoded once per content instead of once per batch.
    """
    from adain.api import encode_style, get_device, stylize
    from adain.model import load_model
    from adain.style import StyleStats

    config = batch.config
    todo = [job for job in batch.jobs if not job.skip]
    _remove_stale_temporaries([job.output for job in todo])
    if not todo:
        yield from (_skipped(batch, job) for job in batch.jobs)
        return
    # A missing device is an error before the model loads; ONNX Runtime runs on the CPU.
    device = get_device("cpu" if config.backend == "onnxruntime" else config.device)
    net = load_model(config.model, revision=config.revision).to(device).eval()
    masks = [load_mask(path, config.max_pixels) for path in batch.masks] or None
    styles: list[Any] = []
    for path in batch.styles:
        if is_style_preset(path):
            styles.append(StyleStats.load(path))
            continue
        image = load_image(path, config.max_pixels, size=config.style_size)
        if config.preserve_color != "coral":
            image = encode_style(
                image,
                net,
                device=device,
                transfer=config.transfer,  # type: ignore[arg-type]
                backend=config.backend,  # type: ignore[arg-type]
                onnx=config.onnx,
            )
        styles.append(image)
    for job in batch.jobs:
        if job.skip or (config.skip_existing and (job.output.exists() or job.output.is_symlink())):
            yield _skipped(batch, job)
            continue
        start = time.perf_counter()
        content = load_image(job.content, config.max_pixels)
        result = stylize(
            content,
            [styles[k] for k in job.styles],
            model=net,
            alpha=config.alpha,
            weights=config.weights,
            masks=masks,
            preserve_color=config.preserve_color,
            content_size=config.content_size,
            max_size=config.max_size,
            device=device,
            tile=config.tile,
            max_memory=config.max_memory,
            precision=config.precision,  # type: ignore[arg-type]
            max_pixels=config.max_pixels,
            transfer=config.transfer,  # type: ignore[arg-type]
            backend=config.backend,  # type: ignore[arg-type]
            onnx=config.onnx,
        )
        save_image(result, job.output, quality=config.quality)
        yield {
            "output": str(job.output),
            "content": str(job.content),
            "styles": [str(batch.styles[k]) for k in job.styles],
            "weights": None if config.weights is None else list(config.weights),
            "alpha": config.alpha,
            "transfer": config.transfer,
            "width": result.width,
            "height": result.height,
            "content_width": content.width,
            "content_height": content.height,
            "seconds": round(time.perf_counter() - start, 4),
            "skipped": False,
        }


def save_preset(
    styles: Sequence[str | Path],
    output: Path,
    *,
    weights: Sequence[float] | None = None,
    style_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    model: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    transfer: str = "adain",
) -> dict[str, Any]:
    """Encode styles (images or presets) into one ``.safetensors`` style preset.

    Several styles are mixed with ``weights`` (equal weights when ``None``), like ``--weight``
    in ``stylize``. The model is loaded only when a style is an image. ``transfer="efdm"``
    keeps each channel's quantiles too (:data:`adain.style.PRESET_QUANTILES`), for
    ``--transfer efdm``; such a preset also works for AdaIN.

    Returns:
        A JSON-able record: ``output``, ``styles``, ``weights``, ``channels``, ``layer``,
        ``transfer``, ``quantiles`` (per channel, ``None`` for AdaIN).
    """
    from adain.api import encode_style, get_device
    from adain.style import PRESET_QUANTILES, StyleStats

    paths = expand_paths(styles, "style", presets=True)
    if output.suffix.lower() != PRESET_SUFFIX:
        raise ValueError(f"-o must end in {PRESET_SUFFIX} (a style preset), got {output}")
    check_output(output, paths, overwrite)
    config = BatchConfig(
        contents=(), styles=styles, weights=weights, style_size=style_size, transfer=transfer
    )
    _check_options(config, len(paths))
    for path in paths:
        if not is_style_preset(path):
            read_size(path, max_pixels)
        elif transfer == "efdm":
            _check_efdm_preset(path)
    net = None
    stats = []
    for path in paths:
        if is_style_preset(path):
            stats.append(StyleStats.load(path))
            continue
        if net is None:
            from adain.model import load_model

            target = get_device(device)
            net = load_model(model, revision=revision).to(target).eval()
        image = load_image(path, max_pixels, size=style_size)
        stats.append(encode_style(image, net, device=target, transfer=transfer))  # type: ignore[arg-type]
    if len({s.channels for s in stats}) > 1:
        raise ValueError(
            f"these styles have {sorted({s.channels for s in stats})} channels: presets mix only "
            "when they were encoded with the same model"
        )
    mix_weights = list(weights) if weights is not None else [1.0] * len(stats)
    preset = StyleStats.mix(stats, mix_weights) if len(stats) > 1 else stats[0]
    if transfer == "adain" and preset.quantiles is not None:
        preset = StyleStats(preset.mean, preset.std, preset.layer)  # AdaIN's presets stay small
    preset.save(output)
    return {
        "output": str(output),
        "styles": [str(p) for p in paths],
        "weights": None if len(stats) == 1 else mix_weights,
        "channels": preset.channels,
        "layer": preset.layer,
        "transfer": transfer,
        "quantiles": None
        if preset.quantiles is None
        else min(preset.quantiles.shape[-1], PRESET_QUANTILES),
    }
