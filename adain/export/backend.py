"""Running an exported ONNX folder with ONNX Runtime, called as the model is called.

:class:`OnnxRuntimeBackend` takes what :meth:`AdaIN.forward` takes (content tensors, style
images or :class:`StyleStats`, ``alpha``, ``weights``, ``preserve_color``) and does what it
does around the network: a content is reflect-padded to a multiple of 8 and the output cropped
back, styles are encoded once by ``encoder.onnx`` and mixed with :meth:`StyleStats.mix`,
``"coral"`` recolours each style image first and ``"luminance"`` keeps the content's chroma
after (:mod:`adain.functional`). Spatial control (masks) needs per-region content statistics
that the decoder graph does not take: it is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adain.architecture import DOWNSAMPLING
from adain.checks import PreserveColor, check_alpha, check_image
from adain.functional import coral, pad_to_multiple, transfer_luminance
from adain.model import AdaIN
from adain.style import StyleStats

CONFIG_NAME = "config.json"
FORMAT = "adain-onnx"
FORMAT_VERSION = 1
# Graph files of each precision; fp16 graphs take and return fp32 (they cast inside).
GRAPH_FILES = {
    "fp32": ("encoder.onnx", "decoder.onnx"),
    "fp16": ("encoder-fp16.onnx", "decoder-fp16.onnx"),
}
INSTALL_HINT = 'pip install "adain[onnx]"'


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a one-line error naming the extra that installs it."""
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError:
        raise ValueError(f"the onnxruntime backend needs ONNX Runtime: {INSTALL_HINT}") from None
    return onnxruntime


def fingerprint(model: AdaIN) -> str:
    """``sha256:<hex>`` of the model's weights: every tensor's name, dtype, shape and bytes, in
    name order. Equal for the same weights however they were loaded, so an ONNX folder can
    say which model it was exported from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(data.shape)}\n".encode())
        digest.update(data.numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json``, checked to be an adain ONNX export; one-line errors."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ValueError(
            f"{folder} has no {CONFIG_NAME}: point --onnx to a folder written by "
            "`adain export MODEL --format onnx -o DIR`"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): export the model again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not an adain ONNX export: export the model again")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {config.get('format_version')!r}, this adain reads "
            f"{FORMAT_VERSION}: export the model again"
        )
    return config


class OnnxRuntimeBackend:
    """An exported folder (:func:`adain.export.onnx.export_onnx`) on ONNX Runtime's CPU
    provider, callable like :class:`AdaIN`.

    Args:
        folder: the export folder (``encoder.onnx``, ``decoder.onnx``, ``config.json``).
        precision: ``"fp32"`` or ``"fp16"`` (the fp16 graphs, within their measured error).
        threads: intra-op threads (``None``: as many as torch uses, ``torch.get_num_threads()``,
            so both backends run on the same cores).
    """

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int | None = None):
        ort = import_onnxruntime()
        self.folder = Path(folder)
        self.config = read_config(self.folder)
        if precision not in GRAPH_FILES:
            raise ValueError(
                f"the onnxruntime backend runs fp32 or fp16 graphs, not {precision!r}: "
                "use --precision fp32 or fp16"
            )
        self.precision = precision
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no notes on stderr for a CLI run
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.sessions = []
        for name in GRAPH_FILES[precision]:
            path = self.folder / name
            if not path.is_file():
                raise ValueError(f"{self.folder} has no {name}: export the model again")
            try:
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # ORT raises its own types for unreadable graphs
                message = " ".join(str(error).split())[:200]
                raise ValueError(f"{path} is not a loadable ONNX graph ({message})") from None
            self.sessions.append(session)
        self.channels = int(self.config["channels"])

    def check_model(self, model: AdaIN) -> None:
        """Refuse a folder exported from other weights than ``model``'s."""
        expected = self.config.get("model_fingerprint")
        if expected != fingerprint(model):
            raise ValueError(
                f"{self.folder} was exported from another model (its config.json records "
                "other weights): export this model with `adain export MODEL --format onnx "
                "-o DIR`, or pass the --model it was exported from"
            )

    # The graphs --------------------------------------------------------------------------

    def encode(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``encoder.onnx`` on ``(B, 3, H, W)`` in [0, 1] (not padded here): relu4_1
        features and their mean and std, fp32 on the CPU."""
        outputs = self.sessions[0].run(None, {"image": _array(image)})
        return tuple(torch.from_numpy(array) for array in outputs)  # type: ignore[return-value]

    def decode(self, feats: Tensor, style: StyleStats, alpha: float) -> Tensor:
        """``decoder.onnx``: AdaIN of ``feats`` with ``style``, the alpha blend, the pixels."""
        feeds = {
            "features": _array(feats),
            "style_mean": _array(style.mean),
            "style_std": _array(style.std),
            "alpha": np.array([alpha], dtype=np.float32),
        }
        return torch.from_numpy(self.sessions[1].run(None, feeds)[0])

    def style_stats(self, style: Tensor) -> StyleStats:
        """A style image ``(B, 3, H, W)`` -> its relu4_1 statistics, as
        :meth:`AdaIN.style_stats` computes them (the image is not padded)."""
        check_image(style, "style")
        _, mean, std = self.encode(style)
        return StyleStats(mean, std)

    # As the model is called --------------------------------------------------------------

    def __call__(
        self,
        content: Tensor,
        style: Tensor | StyleStats | Sequence[Tensor | StyleStats],
        alpha: float = 1.0,
        *,
        weights: Sequence[float] | None = None,
        masks: Tensor | None = None,
        preserve_color: PreserveColor | None = None,
    ) -> Tensor:
        """Stylise ``content`` ``(B, 3, H, W)`` in [0, 1] as ``model(content, style, alpha,
        weights=..., preserve_color=...)`` does; ``(B, 3, H, W)`` unclamped, on the CPU."""
        check_image(content, "content")
        alpha = check_alpha(alpha)
        if masks is not None:
            raise ValueError(
                "masks (one style per region) need the torch backend: the ONNX decoder applies "
                "one style or one mix (weights); drop --backend onnxruntime"
            )
        if preserve_color not in (None, "coral", "luminance"):
            raise ValueError(
                f"preserve_color must be 'coral', 'luminance' or None, got {preserve_color!r}"
            )
        content = content.detach().to("cpu", torch.float32)
        styles: list[Tensor | StyleStats] = (
            list(style) if isinstance(style, list | tuple) else [style]  # type: ignore[list-item]
        )
        stats = [self._stats_of(item, content, preserve_color) for item in styles]
        if not stats:
            raise ValueError("give at least one style")
        if len(stats) > 1 or weights is not None:
            stats = [StyleStats.mix(stats, weights or [1.0] * len(stats))]
        height, width = content.shape[2:]
        feats, _, _ = self.encode(pad_to_multiple(content, DOWNSAMPLING))
        out = self.decode(feats, stats[0], alpha)[:, :, :height, :width]
        if preserve_color == "luminance":
            out = transfer_luminance(out, content)
        return out

    def _stats_of(
        self, item: Tensor | StyleStats, content: Tensor, preserve_color: PreserveColor | None
    ) -> StyleStats:
        """A style image encoded by ``encoder.onnx`` (recoloured first for ``"coral"``), or
        given statistics checked to fit the graphs."""
        if not isinstance(item, StyleStats):
            image = check_image(item, "style").detach().to("cpu", torch.float32)
            if preserve_color == "coral":
                image = coral(image.expand(content.shape[0], -1, -1, -1), content)
            return self.style_stats(image)
        if preserve_color == "coral":
            raise ValueError(
                "preserve_color='coral' recolours the style image: pass images, not "
                "StyleStats (or use preserve_color='luminance')"
            )
        if item.channels != self.channels:
            what = f"style preset {item.source} has" if item.source else "style statistics have"
            raise ValueError(
                f"{what} {item.channels} channels, the ONNX model in {self.folder} "
                f"{self.channels}: encode the style with the same model"
            )
        return item.to("cpu", torch.float32)


def _array(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
