"""``adain export --format onnx``: the model as two ONNX graphs, checked against it on export.

``encoder.onnx`` (image -> relu4_1 features, mean, std) and ``decoder.onnx`` (features + style
mean/std + alpha -> image), with dynamic batch, height and width, plus fp16 twins, a
``config.json`` (inputs, outputs, opset, the weights' fingerprint, the measured parity) and a
README. The folder is written through :func:`adain.outputs.write_folder` (a temporary sibling
swapped in), so a failed export, parity included, leaves nothing behind.

Note:
    The graphs are traced with the TorchScript exporter (``torch.onnx.export(dynamo=False)``).
    The ``torch.export`` exporter (``dynamo=True``, with onnxscript) gives the same numbers but
    records the broadcast of the style statistics over the batch as an equality: its graph
    declares ``style_mean`` with the content's batch dimension, so one style applied to a batch
    of contents contradicts the graph's own shapes. It also took 4x longer to export here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adain import outputs
from adain.architecture import DOWNSAMPLING
from adain.export.backend import (
    CONFIG_NAME,
    FORMAT,
    FORMAT_VERSION,
    GRAPH_FILES,
    INSTALL_HINT,
    OnnxRuntimeBackend,
    fingerprint,
)
from adain.export.graphs import DecoderGraph, EncoderGraph, Upsampling
from adain.export.readme import render_readme
from adain.model import AdaIN

FORMATS = ("onnx",)
# Opset 17 (ONNX 1.12, 2022): every operator used here, in ONNX Runtime >= 1.13, TensorRT 8.6,
# onnx2tf and CoreML's converters.
OPSET = 17
# Fused: ONNX Runtime's CPU provider spent 12-19 % less CPU time on the fused decoder (one
# thread, width 64: 1.18 against 1.46 s at 512 px, 5.05 against 5.77 s at 1024 px); measured
# again by `python -m benchmarks onnx --upsampling` (README, "ONNX export").
DEFAULT_UPSAMPLING: Upsampling = "fused"
README_NAME = "README.md"
EXPORT_FILES = (*GRAPH_FILES["fp32"], *GRAPH_FILES["fp16"], CONFIG_NAME, README_NAME)
TOLERANCE = 1e-4  # max abs difference to the torch model, fp32, RGB in [0, 1]
# Content sizes (H, W) of the parity check: square, odd (padded to 48x80 and cropped back),
# landscape. One style image of odd size, encoded unpadded as the model encodes styles.
PARITY_SIZES = ((64, 64), (45, 77), (72, 120))
PARITY_STYLE_SIZE = (61, 53)
PARITY_ALPHA = 0.8
METADATA_KEY = "adain_model_fingerprint"

_ENCODER_IO = (["image"], ["features", "mean", "std"])
_DECODER_IO = (["features", "style_mean", "style_std", "alpha"], ["image"])
_DYNAMIC_AXES = {
    "image": {0: "batch", 2: "height", 3: "width"},
    "features": {0: "batch", 2: "cells_height", 3: "cells_width"},
    "mean": {0: "batch"},
    "std": {0: "batch"},
    "style_mean": {0: "style_batch"},
    "style_std": {0: "style_batch"},
}
_DECODER_AXES = {**_DYNAMIC_AXES, "image": {0: "batch", 2: "out_height", 3: "out_width"}}


def check_format(format: str) -> str:
    """Validate ``--format``: one line listing the formats."""
    if format not in FORMATS:
        raise ValueError(f"unknown --format {format!r}: the formats are {', '.join(FORMATS)}")
    return format


def _test_image(seed: int, height: int, width: int) -> torch.Tensor:
    """A seeded ``(1, 3, H, W)`` image in [0, 1] with coarse structure and fine noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=generator)
    fine = torch.rand(1, 3, height, width, generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return (0.8 * smooth + 0.2 * fine).clamp(0, 1)


def _trace(module: nn.Module, args: tuple, path: Path, io: tuple, axes: dict, opset: int) -> None:
    names = [*io[0], *io[1]]
    with warnings.catch_warnings():
        # The TorchScript exporter's DeprecationWarning and its tracer notes about constants:
        # the parity check below is what says the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=io[0],
            output_names=io[1],
            dynamic_axes={name: axes[name] for name in names if name in axes},
            do_constant_folding=True,
        )


def _stamp(path: Path, model_fingerprint: str) -> None:
    """Record the weights' fingerprint in the graph's own metadata, too."""
    import onnx

    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, model_fingerprint
    graph.doc_string = "adain (AdaIN style transfer): see the README.md beside this file"
    onnx.save(graph, str(path))


def _export_graphs(
    model: AdaIN, folder: Path, upsampling: Upsampling, opset: int, model_fingerprint: str
) -> None:
    example = _test_image(0, 64, 64)
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        encoder_file, decoder_file = GRAPH_FILES[precision]
        encoder = EncoderGraph(model, dtype)
        feats, mean, std = EncoderGraph(model)(example)
        decoder = DecoderGraph(model, upsampling, dtype)
        _trace(encoder, (example,), folder / encoder_file, _ENCODER_IO, _DYNAMIC_AXES, opset)
        args = (feats, mean, std, torch.ones(1))
        _trace(decoder, args, folder / decoder_file, _DECODER_IO, _DECODER_AXES, opset)
        for name in (encoder_file, decoder_file):
            _stamp(folder / name, model_fingerprint)


def parity_cases(
    model: AdaIN, sizes: Sequence[tuple[int, int]] = PARITY_SIZES
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(content, style, model output)`` on seeded images of each content size, one odd-sized
    style, ``alpha`` = :data:`PARITY_ALPHA`: what exported graphs must reproduce."""
    style = _test_image(1, *PARITY_STYLE_SIZE)
    cases = []
    for index, (height, width) in enumerate(sizes):
        content = _test_image(2 + index, height, width)
        with torch.no_grad():
            cases.append((content, style, model(content, style, PARITY_ALPHA)))
    return cases


def measure_parity(
    backend: OnnxRuntimeBackend, cases: Sequence[tuple[torch.Tensor, ...]]
) -> dict[str, Any]:
    """Max abs difference between ``backend`` and the model's outputs in ``cases``
    (:func:`parity_cases`), overall and per content size."""
    per_size = {}
    for content, style, expected in cases:
        got = backend(content, style, PARITY_ALPHA)
        per_size["x".join(map(str, content.shape[2:]))] = float((got - expected).abs().max())
    return {
        "max_abs": max(per_size.values()),
        "per_size": per_size,
        "style_size": "x".join(map(str, PARITY_STYLE_SIZE)),
        "alpha": PARITY_ALPHA,
    }


def export_onnx(
    model: AdaIN,
    folder: str | Path,
    *,
    upsampling: Upsampling = DEFAULT_UPSAMPLING,
    opset: int = OPSET,
    overwrite: bool = False,
    source: str | None = None,
) -> dict[str, Any]:
    """Write ``model`` as ONNX graphs into ``folder`` and check them against it.

    Args:
        model: the model to export (any device; traced from a CPU copy in fp32).
        folder: the folder to write; an existing non-empty one needs ``overwrite`` and is
            replaced only when it holds nothing but an export's files.
        upsampling: how the decoder's upsampling steps are written (:data:`Upsampling`).
        opset: the ONNX opset.
        overwrite: replace an existing export folder.
        source: where the model came from (a folder or Hub id), recorded in ``config.json``.

    Returns:
        The ``config.json`` written, parity figures included.

    Raises:
        ValueError: the output folder may not be written, the ONNX extra is missing, or the
            fp32 graphs differ from the model by more than :data:`TOLERANCE` (nothing written).
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise ValueError(f"exporting to ONNX needs onnx and onnxruntime: {INSTALL_HINT}") from None
    folder = Path(folder)
    outputs.check_folder(folder, EXPORT_FILES, overwrite=overwrite)
    cpu_model = _cpu_fp32(model)
    model_fingerprint = fingerprint(cpu_model)
    written: dict[str, Any] = {}

    def fill(staging: Path) -> None:
        with torch.inference_mode(False), torch.no_grad():
            _export_graphs(cpu_model, staging, upsampling, opset, model_fingerprint)
        config = _config(cpu_model, upsampling, opset, model_fingerprint, source)
        _write_json(staging / CONFIG_NAME, config)
        cases = parity_cases(cpu_model)
        parity = {
            precision: measure_parity(OnnxRuntimeBackend(staging, precision), cases)
            for precision in GRAPH_FILES
        }
        if parity["fp32"]["max_abs"] > TOLERANCE:
            worst = max(parity["fp32"]["per_size"].items(), key=lambda item: item[1])
            raise ValueError(
                f"the exported fp32 graphs differ from the model by {worst[1]:.3g} at {worst[0]} "
                f"px (more than {TOLERANCE:g}); nothing was written: please report this"
            )
        parity["fp32"]["tolerance"] = TOLERANCE
        config["parity"] = parity
        _write_json(staging / CONFIG_NAME, config)
        (staging / README_NAME).write_text(render_readme(config), encoding="utf-8")
        written.update(config)

    outputs.write_folder(folder, fill, EXPORT_FILES, overwrite=overwrite)
    return written


def _cpu_fp32(model: AdaIN) -> AdaIN:
    """The model itself when it is on the CPU in fp32, else a copy that is."""
    first = next(model.parameters())
    if first.device.type == "cpu" and first.dtype == torch.float32:
        return model
    import copy

    return copy.deepcopy(model).to("cpu", torch.float32)


def _config(
    model: AdaIN, upsampling: Upsampling, opset: int, model_fingerprint: str, source: str | None
) -> dict[str, Any]:
    channels = model.encoder.out_channels  # relu4_1's (and relu5_1's): 8x the base width
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "opset": opset,
        "exporter": f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__}",
        "model_fingerprint": model_fingerprint,
        "model_source": source,
        "model_config": {
            "encoder_depth": model.encoder.depth,
            "base_channels": channels // 8,
            "eps": model.eps,
        },
        "channels": channels,
        "downsampling": DOWNSAMPLING,
        "decoder_upsampling": upsampling,
        "files": {
            precision: dict(zip(("encoder", "decoder"), names, strict=True))
            for precision, names in GRAPH_FILES.items()
        },
        "encoder": {
            "inputs": {"image": "float32 (batch, 3, height, width), RGB in [0, 1]"},
            "outputs": {
                "features": f"float32 (batch, {channels}, ceil(height/8), ceil(width/8)), relu4_1",
                "mean": f"float32 (batch, {channels}, 1, 1), per-channel mean of the features",
                "std": f"float32 (batch, {channels}, 1, 1), sqrt(unbiased variance + eps)",
            },
        },
        "decoder": {
            "inputs": {
                "features": f"float32 (batch, {channels}, h, w): the encoder's features of the "
                "content, reflect-padded to a multiple of 8 before encoding",
                "style_mean": f"float32 (batch or 1, {channels}, 1, 1): the encoder's mean of "
                "a style (or a weighted average of several)",
                "style_std": f"float32 (batch or 1, {channels}, 1, 1): likewise, std",
                "alpha": "float32 (1,): content-style trade-off >= 0, 1 = full style",
            },
            "outputs": {
                "image": "float32 (batch, 3, 8h, 8w), RGB roughly in [0, 1], unclamped: crop "
                "to the content's size, clamp to [0, 1]"
            },
        },
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
