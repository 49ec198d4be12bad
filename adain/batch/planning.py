"""Planning a batch: inputs checked, output names chosen, nothing written.

``plan()`` does every check that needs no model (option values, output names, nothing
overwritten by accident, and every input decoded once in full), so a bad batch fails before it
writes anything; :func:`adain.batch.run` then carries the plan out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from adain.batch.config import BatchConfig, check_options
from adain.checks import MIN_SIDE
from adain.image import load_image, read_size, resized_size, save_format
from adain.inputs import expand_paths
from adain.outputs import TEMPORARY_EXTRA_BYTES, check_output
from adain.style import is_style_preset

# Output names list the styles of a mix up to this many, then count the rest.
_MAX_NAMED_STYLES = 3
_NAME_MAX = 255  # bytes: Linux, macOS and Windows file systems, where pathconf cannot tell


@dataclass(frozen=True)
class Job:
    """One output: a content image, the indices of its styles in the batch, and where it goes."""

    content: Path
    styles: tuple[int, ...]
    output: Path
    skip: bool = False  # the output exists and skip_existing keeps it


@dataclass(frozen=True)
class Plan:
    """The checked batch: resolved inputs and one :class:`Job` per output file."""

    config: BatchConfig
    styles: list[Path]
    masks: list[Path]
    jobs: list[Job] = field(default_factory=list)


def check_efdm_preset(path: Path) -> None:
    """EFDM needs the quantiles a preset keeps only when made with ``--transfer efdm``."""
    from adain.style import StyleStats

    if StyleStats.load(path).quantiles is None:
        raise ValueError(
            f"style preset {path} holds only AdaIN's mean and std: make it again with "
            "`adain style-encode --transfer efdm`, or give the style image"
        )


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
    check_options(config, len(styles))
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
                check_efdm_preset(path)
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
