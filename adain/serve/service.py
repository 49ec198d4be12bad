"""The model loaded once, its style presets, and the stylisation both front ends call.

Every request runs :func:`adain.api.stylize` (``torch.inference_mode``, the model call): the
demo and the server give the pixels ``adain stylize`` gives for the same inputs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adain.image import IMAGE_SUFFIXES
from adain.style import StyleStats, is_style_preset

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from adain.model import AdaIN, PreserveColor

# A checkout's examples/ (absent from a wheel): the default style gallery and content examples.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Stages reported to ``progress(fraction, description)``.
Progress = Callable[[float, str], None]


def default_folder(kind: str) -> Path | None:
    """``examples/style`` or ``examples/content`` of the checkout, when there is one."""
    folder = EXAMPLES / kind
    return folder if folder.is_dir() else None


def find_styles(folder: Path | None) -> dict[str, Path]:
    """Style images and ``.safetensors`` presets of ``folder`` (not recursive), by file stem."""
    if folder is None:
        return {}
    if not folder.is_dir():
        raise ValueError(f"--styles {folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES or is_style_preset(path):
            if path.stem in found:
                raise ValueError(
                    f"--styles {folder}: {found[path.stem].name} and {path.name} share the name "
                    f"{path.stem!r}; rename one"
                )
            found[path.stem] = path
    return dict(sorted(found.items()))


def find_images(folder: Path | None) -> list[Path]:
    """Image files of ``folder`` (not recursive), sorted; none when it is ``None``."""
    if folder is None or not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


@dataclass
class Stylist:
    """One model on one device, shared by every request, with the named style presets.

    Args:
        model: the loaded model (in eval mode, on ``device``).
        device: where every call runs.
        model_name: what ``--model`` resolved to, for ``/health`` and the page.
        styles: preset name -> style image or ``.safetensors`` preset file.
        max_pixels: largest image accepted, in pixels.
    """

    model: AdaIN
    device: torch.device
    model_name: str
    styles: dict[str, Path] = field(default_factory=dict)
    max_pixels: int = 4096 * 4096
    _stats: dict[str, StyleStats] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Seconds per megapixel of the last runs: how long a run will take, for progress.
    _seconds_per_mp: float | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        revision: str | None = None,
        device: str = "auto",
        styles: Path | None = None,
        max_pixels: int = 4096 * 4096,
    ) -> Stylist:
        """Resolve and load the model as every command does (``--model``, ``$ADAIN_MODEL``,
        the default; cached copies offline), once, and find the presets in ``styles``."""
        from adain.api import get_device
        from adain.model import load_model
        from adain.weights.hub import resolve_model_id

        found = find_styles(styles)  # a wrong folder fails before the model loads
        target = get_device(device)  # a missing device too
        net = load_model(model, revision=revision).to(target).eval()
        name = resolve_model_id(model) + (f"@{revision}" if revision else "")
        return cls(net, target, name, found, max_pixels)

    def preset(self, name: str) -> Path:
        """The file of preset ``name``; a ``KeyError`` whose message lists the known names."""
        if name not in self.styles:
            known = ", ".join(sorted(self.styles)) or "none (start with --styles DIR)"
            raise KeyError(f"unknown preset {name!r}: known presets are {known}")
        return self.styles[name]

    def preset_stats(self, name: str) -> StyleStats:
        """Statistics of preset ``name``, encoded by the model on first use and kept."""
        from adain.api import encode_style

        path = self.preset(name)
        with self._lock:
            cached = self._stats.get(name)
        if cached is None:
            cached = encode_style(path, self.model, device=self.device, max_pixels=self.max_pixels)
            with self._lock:
                self._stats[name] = cached
        return cached

    def stylize(
        self,
        content: Image.Image,
        styles: Sequence[Image.Image | str],
        *,
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        masks: Sequence[Image.Image] | None = None,
        preserve_color: PreserveColor | None = None,
        progress: Progress | None = None,
    ) -> Image.Image:
        """Stylise ``content`` at its size with images and/or preset names, through the model.

        Styles are encoded first (preset names from the cache), then the content runs with
        their statistics: the same numbers as passing the images (:meth:`AdaIN.style_stats`).
        ``"coral"`` recolours style images to the content first, so it passes images instead.
        """
        from PIL import Image as PILImage

        from adain.api import encode_style, stylize

        report = progress or (lambda fraction, text: None)
        if not styles:
            raise ValueError("give at least one style: upload one or pick a preset")
        if weights is not None and len(weights) != len(styles):
            raise ValueError(f"got {len(weights)} weights for {len(styles)} styles: one each")
        report(0.1, f"encoding {len(styles)} style{'s' if len(styles) > 1 else ''}")
        inputs: list[Image.Image | Path | StyleStats] = []
        for item in styles:
            if isinstance(item, str):
                if preserve_color == "coral" and not is_style_preset(self.preset(item)):
                    inputs.append(self.preset(item))
                else:
                    inputs.append(self.preset_stats(item))
            elif preserve_color == "coral":
                inputs.append(item)
            else:
                inputs.append(encode_style(item, self.model, device=self.device))
        megapixels = content.width * content.height / 1e6
        what = f"stylising {content.width}x{content.height} px ({megapixels:.1f} MP)"
        report(0.3, what)
        start = time.perf_counter()
        with self._ticking(report, what, megapixels):
            out = stylize(
                content,
                inputs,
                model=self.model,
                device=self.device,
                alpha=alpha,
                weights=weights,
                masks=masks,
                preserve_color=preserve_color,
                max_pixels=self.max_pixels,
            )
        seconds = time.perf_counter() - start
        self._seconds_per_mp = seconds / max(megapixels, 1e-3)
        assert isinstance(out, PILImage.Image), "output='pil' returns a PIL image"
        report(0.95, f"done in {seconds:.1f} s")
        return out

    @contextmanager
    def _ticking(self, report: Progress, what: str, megapixels: float) -> Iterator[None]:
        """While the model runs (one call, no steps to count), report the time left as the last
        runs' speed predicts it, twice a second, from 0.3 up to 0.95 at most."""
        estimate = None if self._seconds_per_mp is None else self._seconds_per_mp * megapixels
        if estimate is None or estimate < 2.0:  # a first or a short run: the stage is enough
            yield
            return
        done = threading.Event()

        def tick() -> None:
            start = time.perf_counter()
            while not done.wait(0.5):
                elapsed = time.perf_counter() - start
                left = max(0.0, estimate - elapsed)
                report(0.3 + 0.65 * min(elapsed / estimate, 0.99), f"{what}, ~{left:.0f} s left")

        ticker = threading.Thread(target=tick, name="adain-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
