"""``adain demo``: a Gradio page over one loaded model.

A content image (uploaded or an example), styles picked from a gallery and/or uploaded, alpha,
style weights, colour preservation, and a region painted on the content for two styles. The
result is shown and offered as a full-size PNG. Every run goes through
:meth:`adain.serve.service.Stylist.stylize`, the call ``adain serve`` makes.

Gradio's analytics and version check are off (they would reach the internet at start); its fonts
are bundled, so the page works offline.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Before gradio is imported: no analytics, no version check, no telemetry from the Hub client.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from adain.image import load_image, save_image  # noqa: E402
from adain.serve.limits import MB  # noqa: E402
from adain.serve.service import Stylist  # noqa: E402

_NO_COLOUR = "off"
_WEIGHTS_HELP = "One number per style, in order: gallery picks, then uploads (e.g. 1, 3)."


def parse_weights(text: str | None, count: int) -> list[float] | None:
    """``"1, 3"`` -> ``[1.0, 3.0]``; blank -> ``None`` (equal weights)."""
    if not text or not text.strip():
        return None
    try:
        weights = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"style weights {text!r}: write numbers separated by commas") from None
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} style weights for {count} styles: give one each")
    return weights


def painted_region(editor: dict[str, Any] | None) -> Image.Image:
    """The strokes painted on the image editor -> a grey mask (white where painted)."""
    layers = [np.asarray(layer) for layer in (editor or {}).get("layers") or []]
    layers = [layer for layer in layers if layer.ndim == 3 and layer.shape[2] == 4]
    if not layers:
        raise ValueError("paint the region of the first style on the content first")
    alpha = np.max(np.stack([layer[..., 3] for layer in layers]), axis=0)
    if not alpha.any():
        raise ValueError("paint the region of the first style on the content first")
    return Image.fromarray(alpha.astype(np.uint8), mode="L")


class _Results:
    """Full-size results of this process, in a temporary folder removed at exit."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="adain-demo-"))
        self._count = itertools.count(1)
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)

    def save(self, image: Image.Image, content: Path) -> Path:
        return save_image(image, self.folder / f"{content.stem}_adain_{next(self._count)}.png")


def _run(
    stylist: Stylist,
    results: _Results,
    content: str | None,
    picked: list[str] | None,
    uploads: list[str] | None,
    alpha: float,
    weights: str,
    preserve: str,
    use_region: bool,
    editor: dict[str, Any] | None,
    progress: gr.Progress,
) -> tuple[str, str, str]:
    try:
        if not content:
            raise ValueError("upload a content image or pick an example")
        progress(0.0, desc="reading images")
        image = load_image(content, max_pixels=stylist.max_pixels)
        styles: list[Image.Image | str] = list(picked or [])
        styles += [load_image(path, max_pixels=stylist.max_pixels) for path in uploads or []]
        if not styles:
            raise ValueError("pick a style in the gallery or upload one")
        masks = None
        if use_region:
            if len(styles) != 2:
                raise ValueError(f"a painted region takes exactly two styles, got {len(styles)}")
            region = painted_region(editor).resize(image.size, Image.Resampling.BILINEAR)
            masks = [region, Image.eval(region, lambda value: 255 - value)]
        out = stylist.stylize(
            image,
            styles,
            alpha=alpha,
            weights=parse_weights(weights, len(styles)),
            masks=masks,
            preserve_color=None if preserve == _NO_COLOUR else preserve,  # type: ignore[arg-type]
            progress=lambda fraction, text: progress(fraction, desc=text),
        )
        progress(0.97, desc="writing the PNG")
        path = results.save(out, Path(content))
    except (ValueError, KeyError) as error:  # ImageError is a ValueError
        message = error.args[0] if isinstance(error, KeyError) else str(error)
        raise gr.Error(" ".join(message.split()), print_exception=False) from None
    return str(path), str(path), f"{out.width}x{out.height} px, alpha {alpha:g}"


def build_demo(stylist: Stylist, examples: list[Path] | None = None) -> gr.Blocks:
    """The Gradio app: every stylisation through ``stylist``."""
    results = _Results()
    gallery_items = [
        (str(path), name) for name, path in stylist.styles.items() if path.suffix != ".safetensors"
    ]
    with gr.Blocks(title="adain: arbitrary style transfer", analytics_enabled=False) as blocks:
        gr.Markdown(
            "## adain: arbitrary style transfer (AdaIN, Huang & Belongie 2017)\n"
            f"Model: `{stylist.model_name}` on {stylist.device}. Images up to "
            f"{stylist.max_pixels:,} pixels; the result keeps the content's size."
        )
        with gr.Row():
            with gr.Column():
                content = gr.Image(
                    label="Content", type="filepath", sources=["upload", "clipboard"],
                    elem_id="content",
                )  # fmt: skip
                if examples:
                    gr.Examples(
                        [[str(path)] for path in examples], inputs=[content], label="Examples"
                    )
                with gr.Accordion("Regions: paint where the first style goes", open=False):
                    use_region = gr.Checkbox(
                        label="Use the painted region (two styles: the first where painted, "
                        "the second elsewhere)",
                        elem_id="use-region",
                    )
                    editor = gr.ImageEditor(
                        label="Paint on the content", type="numpy", image_mode="RGBA",
                        sources=[], layers=False, elem_id="region",
                        brush=gr.Brush(colors=["#ff3b30"], color_mode="fixed", default_size=24),
                    )  # fmt: skip
            with gr.Column():
                gallery = gr.Gallery(
                    value=gallery_items, label="Style gallery: click to pick", columns=4,
                    height=200, allow_preview=False, elem_id="gallery",
                )  # fmt: skip
                picked = gr.CheckboxGroup(
                    list(stylist.styles), label="Styles picked", elem_id="picked"
                )
                uploads = gr.File(
                    label="Or upload styles", file_count="multiple", file_types=["image"],
                    type="filepath", elem_id="style-upload",
                )  # fmt: skip
                alpha = gr.Slider(
                    0.0, 1.5, value=1.0, step=0.05, elem_id="alpha",
                    label="Alpha: 0 keeps the content, 1 is full style, above over-stylises",
                )  # fmt: skip
                weights = gr.Textbox(label="Style weights", placeholder=_WEIGHTS_HELP)
                preserve = gr.Radio(
                    [_NO_COLOUR, "coral", "luminance"], value=_NO_COLOUR, elem_id="preserve",
                    label="Keep the content's colours",
                )  # fmt: skip
                run = gr.Button("Stylise", variant="primary", elem_id="run")
        with gr.Row():
            result = gr.Image(
                label="Result", type="filepath", format="png", interactive=False,
                elem_id="result",
            )  # fmt: skip
            with gr.Column():
                download = gr.File(label="Download (full size PNG)", elem_id="download")
                info = gr.Markdown(elem_id="info")

        def pick(chosen: list[str] | None, event: gr.SelectData) -> list[str]:
            name = gallery_items[event.index][1]
            chosen = list(chosen or [])
            return [n for n in chosen if n != name] if name in chosen else [*chosen, name]

        def to_editor(path: str | None) -> dict[str, Any] | None:
            return None if path is None else {"background": path, "layers": [], "composite": path}

        def stylise(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple[str, str, str]:  # noqa: B008 - Gradio's progress idiom
            return _run(stylist, results, *args, progress=progress)

        gallery.select(pick, inputs=[picked], outputs=[picked])
        content.change(to_editor, inputs=[content], outputs=[editor])
        run.click(
            stylise,
            inputs=[content, picked, uploads, alpha, weights, preserve, use_region, editor],
            outputs=[result, download, info],
        )
    return blocks


def launch(
    stylist: Stylist,
    examples: list[Path] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    queue_size: int = 16,
    max_upload_mb: float = 32.0,
) -> None:
    """Build the app and serve it until interrupted (one stylisation at a time, a bounded queue)."""
    blocks = build_demo(stylist, examples)
    # One run at a time: on a CPU one run already uses every core.
    blocks.queue(default_concurrency_limit=1, max_size=queue_size)
    folders = {path.parent for path in [*stylist.styles.values(), *(examples or [])]}
    blocks.launch(
        server_name=host,
        server_port=port,
        share=share,
        ssr_mode=False,  # no Node server: the page is served by Python alone
        show_error=True,
        max_file_size=max(1, round(max_upload_mb * MB)),  # refused before it uploads
        allowed_paths=[str(folder) for folder in folders],
    )
