"""Running a planned batch (:func:`run`) and encoding styles into a preset (:func:`save_preset`).

These are the parts that load the model: once per call, and only when an image needs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adain.batch.config import BatchConfig, check_options
from adain.batch.planning import Job, Plan, check_efdm_preset
from adain.image import DEFAULT_MAX_PIXELS, load_image, load_mask, read_size, save_image
from adain.inputs import PRESET_SUFFIX, expand_paths
from adain.outputs import check_output, remove_if_abandoned, temporary_file_of
from adain.style import is_style_preset


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
    check_options(config, len(paths))
    for path in paths:
        if not is_style_preset(path):
            read_size(path, max_pixels)
        elif transfer == "efdm":
            check_efdm_preset(path)
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
