"""AdaIN against the Gram method on the same images: wall time and losses, as the AdaIN paper's
Fig. 3 and speed table compare them, in one labelled figure and a JSON-able dict.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from adain.architecture import STYLE_LAYERS
from adain.functional import gram_matrix
from adain.gatys import GATYS_STYLE_LAYERS, Callback, GatysConfig, gatys
from adain.image import to_pil
from adain.losses import adain_content_loss, style_loss_gram, style_loss_mean_std
from adain.model import AdaIN

DEFAULT_ALPHAS = (0.25, 0.5, 1.0)
# Gatys snapshots: the AdaIN paper reports Gatys reaching AdaIN's style loss after ~80-100
# iterations (Fig. 3) and times it at 500 (its speed table).
DEFAULT_STEPS = (10, 100, 500)
_INK, _BACKGROUND = (30, 30, 30), (255, 255, 255)


@torch.no_grad()
def evaluate_losses(
    model: AdaIN, image: Tensor, content: Tensor, style: Tensor
) -> dict[str, float]:
    """The three losses the comparison reports, all measured with ``model``'s encoder as it is.

    Returns:
        ``content_loss``: AdaIN's content loss (MSE at relu4_1, paper eq. 12) against the
        *content image's* features; ``style_loss_mean_std``: AdaIN's style loss (eq. 13,
        relu1_1..relu4_1); ``style_loss_gram``: the seed's ``sum_l w_l E_l`` over Gatys' five
        layers with ``w_l = 1/5``, the style Gram rescaled to the image's size.
    """
    layers = tuple(dict.fromkeys(STYLE_LAYERS + GATYS_STYLE_LAYERS))
    feats = model.encoder(image, layers)
    content_feats = model.encoder(content, ("relu4_1",))
    style_feats = model.encoder(style, layers)
    grams = {
        n: gram_matrix(style_feats[n], normalize=True) * feats[n].shape[2] * feats[n].shape[3]
        for n in GATYS_STYLE_LAYERS
    }
    weights = {n: 1.0 / len(GATYS_STYLE_LAYERS) for n in GATYS_STYLE_LAYERS}
    return {
        "content_loss": float(adain_content_loss(feats["relu4_1"], content_feats["relu4_1"])),
        "style_loss_mean_std": float(
            style_loss_mean_std(feats, {n: style_feats[n] for n in STYLE_LAYERS}, model.eps)
        ),
        "style_loss_gram": float(style_loss_gram(feats, grams, weights)),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow < 10.1 or without FreeType: the bitmap font
        return ImageFont.load_default()


def compose_figure(
    rows: Sequence[Sequence[tuple[Image.Image, list[str]]]], tile: int = 192
) -> Image.Image:
    """Rows of images, each fitted into a ``tile`` box with its label lines underneath."""
    gap, font_size = 8, max(10, tile // 16)
    line_height = font_size + 3
    lines = max(len(label) for row in rows for _, label in row)
    columns = max(len(row) for row in rows)
    cell_height = tile + lines * line_height + gap
    figure = Image.new(
        "RGB", (gap + columns * (tile + gap), gap + len(rows) * cell_height), _BACKGROUND
    )
    draw, font = ImageDraw.Draw(figure), _font(font_size)
    for r, row in enumerate(rows):
        top = gap + r * cell_height
        for c, (image, label) in enumerate(row):
            left = gap + c * (tile + gap)
            scale = tile / max(image.size)  # up or down: small test images stay visible
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            thumb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            figure.paste(
                thumb, (left + (tile - thumb.width) // 2, top + (tile - thumb.height) // 2)
            )
            for k, text in enumerate(label):
                draw.text((left, top + tile + 2 + k * line_height), text, fill=_INK, font=font)
    return figure


def _label(title: str, record: dict[str, Any]) -> list[str]:
    return [
        title,
        f"{record['seconds']:.2f} s",
        f"content {record['content_loss']:.3g}",
        f"style m/s {record['style_loss_mean_std']:.3g}",
        f"style gram {record['style_loss_gram']:.3g}",
    ]


def compare(
    content: Tensor,
    style: Tensor,
    model: AdaIN,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    steps: Sequence[int] = DEFAULT_STEPS,
    config: GatysConfig | None = None,
    tile: int = 192,
    callback: Callback | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Run AdaIN at each alpha and one Gram-method optimisation snapshotted at each step count.

    Args:
        content: ``(1, 3, H, W)`` RGB in [0, 1] (both methods work at this size).
        style: ``(1, 3, h, w)`` RGB in [0, 1].
        model: the AdaIN model; its encoder also serves the Gram method and the loss metrics.
        alphas: AdaIN content-style trade-offs.
        steps: iteration counts at which the Gram-method image is taken (one run to the max).
        config: Gram-method settings (``steps`` is replaced by ``max(steps)``).
        tile: px per image in the figure.
        callback: called after every Gram-method iteration with ``(step, losses, image)`` as
            :func:`adain.gatys.gatys` calls it (for progress); its return value is ignored.

    Returns:
        The figure (content and style, an AdaIN row, a Gatys row) and a JSON-able dict:
        ``{"size", "device", "adain": [...], "gatys": [...], "gatys_config"}``, each record with
        ``seconds`` (wall time, Gatys cumulative from the start of its run), ``content_loss``,
        ``style_loss_mean_std`` and ``style_loss_gram`` (see :func:`evaluate_losses`).
    """
    if not alphas or not steps:
        raise ValueError("give at least one alpha and one step count")
    if any(s < 1 for s in steps):
        raise ValueError(f"step counts must be >= 1, got {list(steps)}")
    device = next(model.parameters()).device
    content, style = content.to(device), style.to(device)
    config = dataclasses.replace(config or GatysConfig.gatys2016(), steps=max(steps))

    adain_records, adain_images = _adain_runs(model, content, style, alphas)
    gatys_records, snapshots = _gatys_runs(model, content, style, config, steps, callback)
    rows = [
        [(to_pil(content[:1].cpu()), ["content"]), (to_pil(style[:1].cpu()), ["style"])],
        [
            (to_pil(image[:1].cpu()), _label(f"AdaIN alpha {r['alpha']:g}", r))
            for image, r in zip(adain_images, adain_records, strict=True)
        ],
        [
            (to_pil(snapshots[r["steps"]][1][:1].cpu()), _label(f"Gatys {r['steps']} it", r))
            for r in gatys_records
        ],
    ]
    report = {
        "size": list(content.shape[2:]),
        "device": str(device),
        "adain": adain_records,
        "gatys": gatys_records,
        "gatys_config": dataclasses.asdict(config),
    }
    return compose_figure(rows, tile), report


def _adain_runs(
    model: AdaIN, content: Tensor, style: Tensor, alphas: Sequence[float]
) -> tuple[list[dict[str, Any]], list[Tensor]]:
    """AdaIN at each alpha: records (timed, with losses) and the images."""
    device = content.device
    records, images = [], []
    with torch.inference_mode():
        model(content, style, 1.0)  # warm-up: first-call allocations are not AdaIN's cost
    for alpha in alphas:
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(content, style, alpha).clamp(0.0, 1.0)
        _sync(device)
        seconds = time.perf_counter() - start
        record = {"alpha": alpha, "seconds": seconds, **evaluate_losses(model, out, content, style)}
        records.append(record)
        images.append(out)
    return records, images


def _gatys_runs(
    model: AdaIN,
    content: Tensor,
    style: Tensor,
    config: GatysConfig,
    steps: Sequence[int],
    callback: Callback | None = None,
) -> tuple[list[dict[str, Any]], dict[int, tuple[float, Tensor]]]:
    """One Gram-method run to ``max(steps)``, snapshotted (seconds, image) at each of ``steps``,
    and a record with losses per snapshot."""
    device = content.device
    # Warm-up: a one-step run pays one-off costs (torch imports its compiler stack the first
    # time an optimiser is built: seconds) that are not the Gram method's per-iteration cost.
    gatys(content, style, dataclasses.replace(config, steps=1), model=model)
    wanted, snapshots = set(steps), {}
    start = time.perf_counter()

    def keep(step: int, losses: dict[str, float], image: Tensor) -> None:
        if step in wanted:
            _sync(device)
            snapshots[step] = (time.perf_counter() - start, image.clamp(0.0, 1.0).clone())
        if callback is not None:
            callback(step, losses, image)

    gatys(content, style, config, model=model, callback=keep)
    records = [
        {"steps": step, "seconds": seconds, **evaluate_losses(model, image, content, style)}
        for step, (seconds, image) in sorted(snapshots.items())
    ]
    return records, snapshots


def _first_at_or_below(curve: Sequence[float], target: float) -> int | None:
    return next((i for i, value in enumerate(curve) if value <= target), None)


def warm_start_saving(
    content: Tensor,
    style: Tensor,
    model: AdaIN,
    config: GatysConfig | None = None,
    checkpoints: Sequence[int] = (25, 50, 100),
) -> dict[str, Any]:
    """How many iterations starting from the AdaIN output saves over starting from the content.

    Runs the Gram method twice for ``max(checkpoints)`` iterations, from ``init="content"`` and
    ``init="adain"``, recording the style loss (the objective's unweighted Gram term) after every
    iteration. For each checkpoint ``k`` the target is the style loss the content start reached
    after ``k`` iterations; the AdaIN start's count is the first iteration at or below it.

    Returns:
        ``{"targets": [{"content_iterations", "style_loss", "adain_iterations", "saved"}],
        "adain_output_style_loss", "content_iterations_to_adain_output",
        "curves": {"content": [...], "adain": [...]}}``; ``curve[i]`` is the loss after ``i``
        iterations; an iteration count is ``None`` when the level was not reached.
    """
    config = dataclasses.replace(config or GatysConfig.gatys2016(), steps=max(checkpoints) + 1)
    curves: dict[str, list[float]] = {}
    for init in ("content", "adain"):
        curve: list[float] = []
        gatys(
            content,
            style,
            dataclasses.replace(config, init=init),
            model=model,
            callback=lambda step, losses, image, curve=curve: curve.append(losses["style"]),
        )
        curves[init] = curve  # losses at the iterate each step started from: curve[i] after i
    targets = []
    for k in checkpoints:
        target = curves["content"][k]
        needed = _first_at_or_below(curves["content"], target)  # k, or fewer if not monotone
        reached = _first_at_or_below(curves["adain"], target)
        assert needed is not None
        targets.append(
            {
                "content_iterations": needed,
                "style_loss": target,
                "adain_iterations": reached,
                "saved": None if reached is None else needed - reached,
            }
        )
    adain_level = curves["adain"][0]  # the AdaIN output itself (paper Fig. 3's comparison)
    return {
        "targets": targets,
        "adain_output_style_loss": adain_level,
        "content_iterations_to_adain_output": _first_at_or_below(curves["content"], adain_level),
        "curves": curves,
    }
