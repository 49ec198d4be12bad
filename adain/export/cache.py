"""Which exported graphs ``backend="onnxruntime"`` runs: a folder given, or one exported on the
fly into the cache, keyed by the model's weights.

The cache folder is ``$ADAIN_CACHE/onnx/<fingerprint>-opset<N>`` (``~/.cache/adain`` by default,
:func:`adain.weights.download.cache_root`); it is written whole or not at all
(:func:`adain.outputs.write_folder`), so a folder that is there is complete. Sessions stay open
for the process, so a batch opens each graph once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from adain.export.backend import CONFIG_NAME, GRAPH_FILES, OnnxRuntimeBackend, fingerprint
from adain.export.onnx import OPSET, export_onnx
from adain.model import AdaIN
from adain.weights.download import cache_root

# (folder, precision, config.json's mtime, threads) -> open sessions.
_OPEN: dict[tuple[str, str, int, int], OnnxRuntimeBackend] = {}


def cached_export(model: AdaIN, cache_dir: str | Path | None = None) -> Path:
    """The cache's export folder of ``model``, exported now when it is not there yet."""
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "onnx"
    digest = fingerprint(model).removeprefix("sha256:")
    folder = root / f"{digest[:16]}-opset{OPSET}"
    if not (folder / CONFIG_NAME).is_file():
        export_onnx(model, folder, source="exported on the fly by the onnxruntime backend")
        # One line, as for a first download: the next runs reuse the folder.
        print(f"adain: exported the model to ONNX once, into {folder}", file=sys.stderr)
    return folder


def onnx_backend(
    model: AdaIN,
    folder: str | Path | None = None,
    *,
    precision: str = "fp32",
    cache_dir: str | Path | None = None,
) -> OnnxRuntimeBackend:
    """ONNX Runtime sessions of ``model``'s graphs: ``folder`` (checked to come from
    ``model``'s weights), else the cache's export (made on first use).

    Raises:
        ValueError: a folder that is not an export, or one of another model; one line.
    """
    if precision not in GRAPH_FILES:
        raise ValueError(
            f"the onnxruntime backend runs fp32 or fp16 graphs, not {precision!r}: "
            "use --precision fp32 or fp16"
        )
    source = Path(folder) if folder is not None else cached_export(model, cache_dir)
    config = source / CONFIG_NAME
    if not source.is_dir():
        raise ValueError(
            f"--onnx {source} is not a folder: give a folder written by `adain export`"
        )
    mtime = config.stat().st_mtime_ns if config.is_file() else 0
    key = (str(source.resolve()), precision, mtime, torch.get_num_threads())
    backend = _OPEN.get(key)
    if backend is None:
        backend = OnnxRuntimeBackend(source, precision)
        _OPEN.clear()  # one model's sessions at a time: a process rarely needs two
        _OPEN[key] = backend
    backend.check_model(model)
    return backend
