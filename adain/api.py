"""Task API over images: what a user does with files, PIL images and tensors, through the model.

Named ``api`` rather than STYLE.md's ``stylize.py``: a submodule named like the function
``adain.stylize`` would replace that function on the package as soon as it was imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch import Tensor

from adain.checks import PreserveColor, check_image
from adain.efdm import Transfer
from adain.engine.precision import Precision
from adain.engine.runner import EngineOptions
from adain.image import (
    DEFAULT_MAX_PIXELS,
    limit_size,
    load_image,
    load_mask,
    resize_shorter,
    source_of,
    to_pil,
    to_tensor,
)
from adain.model import AdaIN, load_model
from adain.style import StyleStats, is_style_preset

ImageLike = str | Path | Image.Image | Tensor
StyleLike = ImageLike | StyleStats
# What runs the network: the model's engine, or its exported graphs (adain.export).
Backend = Literal["torch", "onnxruntime"]
BACKENDS = ("torch", "onnxruntime")


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available: use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available: use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or mps")
    return torch.device(device)


def as_tensor(
    image: ImageLike,
    size: int | None = None,
    max_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str = "image",
) -> Tensor:
    """A path, PIL image or tensor -> ``(1 or B, 3, H, W)`` float tensor in [0, 1].

    ``size`` resizes the shorter side (``None``/0 keeps the size); ``max_size`` caps the longer
    side; a resize to more than ``max_pixels`` is refused before it allocates. Tensors are taken
    as they are (``(3, H, W)`` gains a batch dimension). An image read from a file is checked
    here, so that an error names the file (``name`` says what it is: content, style).
    """
    if isinstance(image, Tensor):
        tensor = image.unsqueeze(0) if image.dim() == 3 else image
        if size or max_size:
            resized = resize_shorter(to_pil(tensor), size, max_pixels)
            tensor = to_tensor(limit_size(resized, max_size))
        return tensor
    if isinstance(image, str | Path):
        image = load_image(image, max_pixels, size=size, max_size=max_size)
    else:
        image = limit_size(resize_shorter(image, size, max_pixels), max_size)
    tensor = to_tensor(image)
    source = source_of(image)
    if source is not None:
        check_image(tensor, f"{name} {source}")
    return tensor


def _resolve_model(
    model: AdaIN | str | Path | None, revision: str | None, device: torch.device
) -> AdaIN:
    """The caller's model as it is (calls run on ``device`` without moving it), or a model
    loaded by name onto ``device``."""
    if isinstance(model, AdaIN):
        return model
    return load_model(model, revision=revision).to(device)


@torch.inference_mode()
def encode_style(
    style: StyleLike,
    model: AdaIN | str | Path | None = None,
    *,
    style_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device: str | torch.device = "auto",
    revision: str | None = None,
    transfer: Transfer = "adain",
    backend: Backend = "torch",
    onnx: str | Path | None = None,
) -> StyleStats:
    """Encode a style once into reusable statistics (``StyleStats.save`` writes a preset).

    Encoded as :func:`stylize` encodes style images (:meth:`AdaIN.style_stats`: the same
    numbers, in bounded memory at any size). Returned on the CPU. ``max_pixels`` caps the
    style image as read and as resized (:func:`adain.image.load_image`). ``transfer="efdm"``
    also keeps each channel's sorted features (:mod:`adain.efdm`). ``backend`` and ``onnx``:
    as in :func:`stylize`.
    """
    if isinstance(style, StyleStats):
        return style
    if isinstance(style, str | Path) and is_style_preset(style):
        return StyleStats.load(style)
    if backend != "torch" or onnx is not None:
        target = _onnx_device(device, backend, transfer, None, None)
    else:
        target = get_device(device)
    net = _resolve_model(model, revision, target)
    image = as_tensor(style, style_size, max_pixels=max_pixels, name="style")
    if backend == "onnxruntime":
        from adain.export.cache import onnx_backend

        return onnx_backend(net, onnx).style_stats(image)
    engine = EngineOptions(device=target)
    return net.style_stats(image, engine=engine, transfer=transfer).to("cpu")


@torch.inference_mode()
def stylize(
    content: ImageLike,
    style: StyleLike | Sequence[StyleLike],
    *,
    model: AdaIN | str | Path | None = None,
    alpha: float = 1.0,
    weights: Sequence[float] | None = None,
    masks: Sequence[ImageLike] | Tensor | None = None,
    preserve_color: PreserveColor | None = None,
    content_size: int | None = None,
    style_size: int | None = None,
    max_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device: str | torch.device = "auto",
    revision: str | None = None,
    output: Literal["pil", "tensor"] = "pil",
    tile: int | None = None,
    max_memory: int | str | None = None,
    precision: Precision = "fp32",
    transfer: Transfer = "adain",
    backend: Backend = "torch",
    onnx: str | Path | None = None,
) -> Image.Image | Tensor:
    """Stylise an image with one or several styles: files, PIL images or tensors in, through
    the model (``model(content, style, alpha, ...)``), a PIL image or a tensor out.

    Args:
        content: path, PIL image, or tensor ``(3, H, W)``/``(B, 3, H, W)`` in [0, 1].
        style: one style (path, PIL image, tensor, ``.safetensors`` preset or
            :class:`StyleStats`) or a sequence of them.
        model: an :class:`AdaIN`, a folder, a Hub id, or ``None`` for ``$ADAIN_MODEL`` / default.
        alpha: content-style trade-off, finite and >= 0 (above 1 over-stylises).
        weights: interpolation weights, one per style.
        masks: one soft mask per style (paths, PIL images or ``(1, 1, H, W)`` tensors), or one
            ``(1, K, H, W)`` tensor; resized to the content.
        preserve_color: ``"coral"`` or ``"luminance"`` (see :meth:`AdaIN.forward`).
        content_size: shorter side of the content in px; ``None`` keeps its size, so the output
            has the input's size.
        style_size: shorter side of the style images in px; ``None`` keeps their size.
        max_size: cap on the longer side of the content, applied after ``content_size``.
        max_pixels: refuse image files, and resizes, of more pixels (``None``: no cap).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; a model given as an object is
            not moved (the call runs on copies of its weights there).
        revision: Hub revision when ``model`` is a repository id.
        output: ``"pil"`` (one image) or ``"tensor"`` (``(B, 3, H, W)`` clamped to [0, 1], CPU).
        tile, max_memory, precision: how the model runs
            (:class:`adain.engine.runner.EngineOptions`).
        transfer: ``"adain"`` (each channel's mean and std) or ``"efdm"`` (each channel's
            whole distribution, :mod:`adain.efdm`), with the same decoder.
        backend: ``"torch"`` (the model's engine) or ``"onnxruntime"``: the model's exported
            graphs on ONNX Runtime's CPU provider (``precision`` ``"fp32"`` or ``"fp16"``;
            ``masks`` and ``transfer="efdm"`` need ``"torch"``), within 1e-4 of ``"torch"``.
        onnx: with ``backend="onnxruntime"``, a folder written by ``adain export`` from this
            model; ``None`` exports the model once into the cache (``$ADAIN_CACHE/onnx``).
    """
    if backend != "torch" or onnx is not None:
        target = _onnx_device(device, backend, transfer, tile, max_memory)
    else:
        target = get_device(device)
    net = _resolve_model(model, revision, target)
    engine = EngineOptions(max_memory=max_memory, tile=tile, precision=precision, device=target)
    styles = list(style) if isinstance(style, list | tuple) else [style]
    style_inputs: list[Tensor | StyleStats] = []
    for item in styles:
        if isinstance(item, StyleStats):
            style_inputs.append(item)
        elif isinstance(item, str | Path) and is_style_preset(item):
            style_inputs.append(StyleStats.load(item))
        else:
            style_inputs.append(as_tensor(item, style_size, None, max_pixels, "style"))
    content_tensor = as_tensor(content, content_size, max_size, max_pixels, "content")
    masks_tensor = _masks_tensor(masks, len(styles))
    if backend == "onnxruntime":
        from adain.export.cache import onnx_backend

        runner = onnx_backend(net, onnx, precision=precision)
        out = runner(
            content_tensor,
            style_inputs,
            alpha,
            weights=weights,
            masks=masks_tensor,
            preserve_color=preserve_color,
        )
    else:
        out = net(
            content_tensor,
            style_inputs,
            alpha,
            weights=weights,
            masks=masks_tensor,
            preserve_color=preserve_color,
            engine=engine,
            transfer=transfer,
        )
    out = out.clamp(0.0, 1.0).cpu()
    if output == "tensor":
        return out
    if out.shape[0] != 1:
        raise ValueError(f"output='pil' returns one image, the batch has {out.shape[0]}")
    return to_pil(out)


def _onnx_device(
    device: str | torch.device,
    backend: str,
    transfer: str,
    tile: int | None,
    max_memory: int | str | None,
) -> torch.device:
    """The CPU, for ``backend="onnxruntime"``, after refusing what that backend cannot do."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
    if backend == "torch":
        raise ValueError("onnx= (--onnx) names graphs for backend='onnxruntime' (--backend)")
    if str(device) not in ("auto", "cpu"):
        raise ValueError(f"the onnxruntime backend runs on the CPU, not {device}: use --device cpu")
    if transfer != "adain":
        raise ValueError(f"transfer={transfer!r} needs the torch backend: drop --backend")
    if tile is not None or max_memory is not None:
        raise ValueError(
            "--tile and --max-memory set how the torch engine runs; the onnxruntime backend runs "
            "whole images: drop them or --backend"
        )
    return torch.device("cpu")


def _masks_tensor(masks: Sequence[ImageLike] | Tensor | None, num_styles: int) -> Tensor | None:
    if masks is None or isinstance(masks, Tensor):
        return masks
    if len(masks) != num_styles:
        raise ValueError(f"got {len(masks)} masks for {num_styles} styles: give one mask per style")
    tensors = []
    for mask in masks:
        if isinstance(mask, str | Path):
            tensors.append(load_mask(mask))
        elif isinstance(mask, Image.Image):
            tensors.append(to_tensor(mask.convert("L").convert("RGB"))[:, :1])
        else:
            tensors.append(mask.reshape(1, 1, *mask.shape[-2:]).float())
    size = tensors[0].shape[-2:]
    tensors = [
        t
        if t.shape[-2:] == size
        else torch.nn.functional.interpolate(
            t, size=tuple(size), mode="bilinear", align_corners=False
        )
        for t in tensors
    ]
    return torch.cat(tensors, dim=1)
