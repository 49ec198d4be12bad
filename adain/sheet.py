"""Labelled contact sheets: an alpha sweep and a style-mix sweep of one content, as one image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont

from adain.image import DEFAULT_MAX_PIXELS, load_image
from adain.style import is_style_preset

# The example sweep: no style, three blends, full style, and one over-stylised step.
DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
_BACKGROUND = (255, 255, 255)
_INK = (40, 40, 40)
_PRESET_CELL = (200, 200, 200)
# Cell sizes a sheet accepts (px): a readable label below, a few cells within memory above.
MIN_CELL_SIZE, MAX_CELL_SIZE = 16, 4096

Cell = tuple[Image.Image | None, str]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow < 10.1 or without FreeType: the bitmap font
        return ImageFont.load_default()


def _fit_label(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def contact_sheet(
    rows: Sequence[Sequence[Cell]], cell_size: int = 192, gap: int = 8
) -> Image.Image:
    """Lay out labelled images in rows, each fitted into a ``cell_size`` px square above its label.

    Args:
        rows: rows of ``(image, label)``; ``None`` draws a grey box (e.g. a style preset, which
            has no pixels to show).
        cell_size: box size in px.
        gap: space between boxes in px.

    Returns:
        One RGB image, white background, rows as long as the longest one.
    """
    if not rows or not any(rows):
        raise ValueError("a contact sheet needs at least one image")
    _check_cell_size(cell_size)
    if not 0 <= gap <= cell_size:
        raise ValueError(f"gap must be from 0 to cell_size ({cell_size}) px, got {gap}")
    font_size = max(10, cell_size // 14)
    label_height = font_size + 6
    width, height = sheet_size(len(rows), max(len(row) for row in rows), cell_size, gap)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(font_size)
    for r, row in enumerate(rows):
        top = gap + r * (cell_size + label_height + gap)
        for c, (image, label) in enumerate(row):
            left = gap + c * (cell_size + gap)
            if image is None:
                box = (left, top, left + cell_size - 1, top + cell_size - 1)
                draw.rectangle(box, fill=_PRESET_CELL)
            else:
                thumb = image.convert("RGB")
                thumb.thumbnail((cell_size, cell_size), Image.Resampling.LANCZOS)
                offset = (
                    left + (cell_size - thumb.width) // 2,
                    top + (cell_size - thumb.height) // 2,
                )
                sheet.paste(thumb, offset)
            text = _fit_label(draw, label, font, cell_size)
            text_left = left + (cell_size - draw.textlength(text, font=font)) / 2
            draw.text((text_left, top + cell_size + 3), text, fill=_INK, font=font)
    return sheet


@dataclass(frozen=True)
class SweepConfig:
    """An ``interpolate`` run; option names match the CLI's (``None``/0 sizes keep)."""

    content: Path
    styles: Sequence[Path]
    alphas: Sequence[float] = DEFAULT_ALPHAS
    steps: int = 5  # mixes per pair of styles, both pure styles included
    preserve_color: Literal["coral", "luminance"] | None = None
    content_size: int | None = None
    style_size: int | None = None
    max_size: int | None = 512  # every cell is a full stylisation: keep the sweep quick
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    cell_size: int = 192  # px, the box each picture of the sheet fits in
    transfer: str = "adain"  # adain (mean and std) or efdm (whole distribution, adain.efdm)


def _check_cell_size(cell_size: int) -> None:
    if not MIN_CELL_SIZE <= cell_size <= MAX_CELL_SIZE:
        raise ValueError(
            f"--cell-size must be from {MIN_CELL_SIZE} to {MAX_CELL_SIZE} px, got {cell_size}"
        )


def sheet_size(rows: int, columns: int, cell_size: int, gap: int = 8) -> tuple[int, int]:
    """``(width, height)`` in px of a :func:`contact_sheet` of ``rows`` x ``columns`` cells."""
    label_height = max(10, cell_size // 14) + 6
    return gap + columns * (cell_size + gap), gap + rows * (cell_size + label_height + gap)


def _mix_weights(steps: int) -> list[tuple[float, float]]:
    return [(1.0 - k / (steps - 1), k / (steps - 1)) for k in range(steps)]


def sweep_sheet(config: SweepConfig) -> Image.Image:
    """Stylise one content over an alpha sweep and a style-mix sweep, as one labelled sheet.

    Rows: the content and the styles; then one alpha sweep per style; then, for each pair of
    consecutive styles A, B, ``steps`` mixes from all A to all B at alpha 1 (paper Sec. 7.3).
    The model is loaded once and each style encoded once (per content with ``coral``).
    """
    from adain.api import encode_style, get_device, stylize
    from adain.model import load_model
    from adain.style import StyleStats

    if not config.styles:
        raise ValueError("give at least one --style")
    if config.transfer not in ("adain", "efdm"):
        raise ValueError(f"--transfer must be adain or efdm, got {config.transfer!r}")
    if not config.alphas or any(not a >= 0 for a in config.alphas):
        raise ValueError(f"--alpha values must be >= 0, got {list(config.alphas)}")
    if len(config.styles) > 1 and config.steps < 2:
        raise ValueError(f"--steps must be >= 2 (both pure styles), got {config.steps}")
    _check_cell_size(config.cell_size)
    mixes = config.steps if len(config.styles) > 1 else 0
    width, height = sheet_size(
        2 * len(config.styles),  # the header, one alpha row per style, one mix row per pair
        max(1 + len(config.styles), len(config.alphas), mixes),
        config.cell_size,
    )
    if config.max_pixels is not None and width * height > config.max_pixels:
        raise ValueError(
            f"the sheet would be {width}x{height} px, over the limit of {config.max_pixels:,} "
            "pixels: lower --cell-size or raise --max-pixels"
        )
    content = load_image(config.content, config.max_pixels)
    device = get_device(config.device)
    net = load_model(config.model, revision=config.revision).to(device).eval()
    names = [Path(s).stem for s in config.styles]
    header: list[Cell] = [(content, "content")]
    styles: list[Any] = []
    for path, name in zip(config.styles, names, strict=True):
        if is_style_preset(path):
            if config.preserve_color == "coral":
                raise ValueError(f"--preserve-color coral needs style images; {path} is a preset")
            preset = StyleStats.load(path)
            if config.transfer == "efdm" and preset.quantiles is None:
                raise ValueError(
                    f"style preset {path} holds only AdaIN's mean and std: make it again with "
                    "`adain style-encode --transfer efdm`, or give the style image"
                )
            styles.append(preset)
            header.append((None, f"{name} (preset)"))
            continue
        image = load_image(path, config.max_pixels, size=config.style_size)
        header.append((image, name))
        if config.preserve_color != "coral":
            image = encode_style(image, net, device=device, transfer=config.transfer)  # type: ignore[arg-type]
        styles.append(image)

    def run(style: Sequence[Any], alpha: float, weights: Sequence[float] | None) -> Image.Image:
        result = stylize(
            content,
            list(style),
            model=net,
            alpha=alpha,
            weights=weights,
            preserve_color=config.preserve_color,
            content_size=config.content_size,
            max_size=config.max_size,
            max_pixels=config.max_pixels,
            device=device,
            transfer=config.transfer,  # type: ignore[arg-type]
        )
        assert isinstance(result, Image.Image)
        return result

    rows: list[list[Cell]] = [header]
    for style, name in zip(styles, names, strict=True):
        rows.append([(run([style], a, None), f"{name} alpha {a:g}") for a in config.alphas])
    for k in range(len(styles) - 1):
        pair, (a, b) = styles[k : k + 2], names[k : k + 2]
        rows.append(
            [
                (run(pair, 1.0, w), f"{a} {w[0]:.0%} / {b} {w[1]:.0%}")
                for w in _mix_weights(config.steps)
            ]
        )
    return contact_sheet(rows, cell_size=config.cell_size)
