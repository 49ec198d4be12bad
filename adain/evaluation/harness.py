"""Content x style pairs through one or more models and methods, measured, into a report.

:func:`evaluate` is what ``adain evaluate`` runs: it reads the images once, stylises every pair
with every model and method (``adain`` or another transfer of the model call, ``efdm`` where the
model has it, and optionally the Gram method), measures each output (:func:`measure_pairs`) and
returns a JSON-able report; :func:`format_table` renders its summary. The training loop calls
:func:`measure_pairs` on its fixed validation pairs.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import adain
from adain.api import as_tensor, get_device
from adain.checks import check_alpha
from adain.engine.runner import EngineOptions
from adain.evaluation.feature_metrics import FEATURE_METRICS, feature_metrics
from adain.evaluation.frechet import feature_distance
from adain.evaluation.weights import MetricNetworks, load_metric_networks
from adain.image import DEFAULT_MAX_PIXELS
from adain.inputs import expand_paths
from adain.model import AdaIN, load_model

GATYS = "gatys"
# Per-output numbers, in table order; the summary adds fid and art_fid.
METRICS = (*FEATURE_METRICS, "lpips")
_SHORT = {
    "seconds_per_image": "s/img",
    "content_loss_relu4_1": "content r4_1",
    "content_loss_relu4_2": "content r4_2",
    "style_loss_mean_std": "style mean/std",
    "style_loss_gram": "style Gram",
    "lpips": "LPIPS",
    "fid": "FID",
    "art_fid": "ArtFID",
}


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: which pairs, which models and methods, how images are sized.

    ``contents`` x ``styles`` (files, folders, globs) give every pair; ``pairs`` (a list file of
    ``CONTENT STYLE`` lines) gives chosen pairs instead.
    """

    contents: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    pairs: str | None = None
    models: list[str | None] = field(default_factory=lambda: [None])  # None: the default model
    transfers: list[str] = field(default_factory=lambda: ["adain"])  # the model call's transfer=
    alpha: float = 1.0  # content-style trade-off of the model call (paper eq. 14)
    gatys_steps: int = 0  # > 0: also the Gram method (Gatys 2016 preset) at this many iterations
    content_size: int | None = None  # shorter side of contents in px; None keeps the size
    style_size: int | None = None  # shorter side of styles in px; None keeps the size
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    metric_weights: list[str] | None = None  # sources of LPIPS/Inception; None: the environment
    revision: str | None = None  # Hub revision of the models
    device: str = "auto"

    def check(self) -> EvalConfig:
        """Raise a one-line ``ValueError`` naming the option to fix."""
        check_alpha(self.alpha)
        if self.pairs is None and (not self.contents or not self.styles):
            raise ValueError("give CONTENT images and --style images, or --pairs LIST")
        if self.pairs is not None and (self.contents or self.styles):
            raise ValueError("--pairs LIST replaces CONTENT and --style: give one or the other")
        if not self.transfers or any(not t or t == GATYS for t in self.transfers):
            raise ValueError(
                f"--transfer takes names such as adain or efdm, got {self.transfers}; the Gram "
                "method comes with --gatys-steps N"
            )
        if self.gatys_steps < 0:
            raise ValueError(f"--gatys-steps must be >= 0, got {self.gatys_steps}")
        for name in ("content_size", "style_size"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 16 px, got {value}")
        return self


def read_pairs(path: str | Path) -> list[tuple[Path, Path]]:
    """``CONTENT STYLE`` per line (tab, comma or spaces between; ``#`` comments), relative paths
    taken from the list's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--pairs {path}: cannot read it ({error})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        sep = "\t" if "\t" in line else "," if "," in line else None
        parts = [p.strip() for p in line.split(sep)]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"--pairs {path}, line {number}: expected CONTENT STYLE, got {line!r}")
        resolved = tuple(p if Path(p).is_absolute() else path.parent / p for p in map(Path, parts))
        for item in resolved:
            if not item.is_file():
                raise ValueError(f"--pairs {path}, line {number}: {item} does not exist")
        pairs.append((resolved[0], resolved[1]))
    if not pairs:
        raise ValueError(f"--pairs {path} lists no pairs")
    return pairs


def _accepts_transfer(model: AdaIN) -> bool:
    return "transfer" in inspect.signature(model.forward).parameters


def _check_gatys(model: AdaIN) -> None:
    from adain.gatys import GATYS_STYLE_LAYERS

    if GATYS_STYLE_LAYERS[-1] not in model.encoder.layer_names:
        raise ValueError(
            f"--gatys-steps needs an encoder to {GATYS_STYLE_LAYERS[-1]}; this model's stops at "
            f"{model.encoder.depth}: evaluate the Gram method with another --model"
        )


def stylise(
    model: AdaIN,
    content: Tensor,
    style: Tensor,
    method: str,
    alpha: float = 1.0,
    gatys_steps: int = 0,
    engine: EngineOptions | None = None,
) -> Tensor:
    """One output of ``method``: the model call with ``transfer=method``, or the Gram method.

    Returns:
        ``(1, 3, H, W)`` clamped to [0, 1], at the content's size.
    """
    if method == GATYS:
        from adain.gatys import GatysConfig, gatys

        _check_gatys(model)

        with torch.enable_grad():  # an optimisation of the pixels
            return gatys(content, style, GatysConfig.gatys2016(steps=gatys_steps), model=model)
    with torch.no_grad():
        if _accepts_transfer(model):
            out = model(content, style, alpha, transfer=method, engine=engine)
        elif method == "adain":
            out = model(content, style, alpha, engine=engine)
        else:
            raise ValueError(
                f"--transfer {method}: this version of adain only has the AdaIN transfer (no "
                "transfer= in AdaIN.forward); use --transfer adain"
            )
    return out.clamp(0.0, 1.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_pairs(
    model: AdaIN,
    pairs: Sequence[tuple[Tensor, Tensor]],
    method: str = "adain",
    alpha: float = 1.0,
    networks: MetricNetworks | None = None,
    gatys_steps: int = 0,
    engine: EngineOptions | None = None,
    warm_up: bool = True,
) -> tuple[list[dict[str, Any]], list[Tensor]]:
    """Stylise each ``(content, style)`` pair and measure the output.

    Args:
        model: the model (its encoder measures the losses, whatever the method).
        pairs: ``(1, 3, H, W)`` content and ``(1, 3, h, w)`` style tensors in [0, 1], on the
            device the model runs on.
        method: a transfer of the model call (``"adain"``, ``"efdm"``) or ``"gatys"``.
        networks: LPIPS (and Inception) when available.
        warm_up: run the model call once, untimed, before the first timed one (start-up costs
            such as thread pools and allocator growth are not the method's).

    Returns:
        One record per pair (``seconds``, the :data:`METRICS`; ``lpips`` ``None`` without the
        network) and the outputs, ``(1, 3, H, W)`` on the CPU.
    """
    records, outputs = [], []
    lpips = networks.lpips if networks is not None else None
    if warm_up and pairs and method != GATYS:
        stylise(model, *pairs[0], method, alpha, engine=engine)
    for content, style in pairs:
        _sync(content.device)
        start = time.perf_counter()
        out = stylise(model, content, style, method, alpha, gatys_steps, engine)
        _sync(content.device)
        seconds = time.perf_counter() - start
        record: dict[str, Any] = {"seconds": seconds}
        record.update(feature_metrics(model.encoder, out, content, style, model.eps))
        record["lpips"] = float(lpips(out, content)[0]) if lpips is not None else None
        records.append(record)
        outputs.append(out.cpu())
    return records, outputs


def mean_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The mean of each metric over the records (``None`` where a record lacks it)."""
    means: dict[str, float | None] = {}
    for name in ("seconds", *METRICS):
        values = [r.get(name) for r in records]
        means[name] = None if not values or None in values else math.fsum(values) / len(values)
    return means


def _load_pairs(config: EvalConfig) -> tuple[list[tuple[Path, Path]], list[Path]]:
    if config.pairs is not None:
        pairs = read_pairs(config.pairs)
    else:
        contents = expand_paths(config.contents, "content")
        styles = expand_paths(config.styles, "style")
        pairs = [(c, s) for c in contents for s in styles]
    return pairs, list(dict.fromkeys(s for _, s in pairs))


def evaluate(config: EvalConfig, log: Any = None) -> dict[str, Any]:
    """Run an evaluation and return its report (JSON-able).

    Args:
        config: what to evaluate.
        log: called with one line of text for what the report cannot hold as numbers (the
            networks that are unavailable, and why); ``None`` says nothing.

    Returns:
        ``{"adain_version", "device", "settings", "pairs", "styles", "metric_networks",
        "notes", "runs"}``; each run is ``{"model", "method", "seconds_per_image", "means",
        "fid", "art_fid", "records"}`` with one record per pair (content, style, seconds and
        the :data:`METRICS`); a number that could not be measured is ``null``.
    """
    config.check()
    device = get_device(config.device)
    pair_paths, style_paths = _load_pairs(config)
    # Every image is read (and checked) before any model runs: a bad file fails at once.
    images: dict[tuple[str, Path], Tensor] = {}
    for content_path, style_path in pair_paths:
        for what, item, size in (
            ("content", content_path, config.content_size),
            ("style", style_path, config.style_size),
        ):
            if (what, item) not in images:
                images[(what, item)] = as_tensor(item, size, None, config.max_pixels, what)
    models = {
        model_id or adain.DEFAULT_REPO_ID: load_model(model_id, revision=config.revision).to(device)
        for model_id in config.models
    }
    if config.gatys_steps:  # before any run
        for model in models.values():
            _check_gatys(model)
    networks = load_metric_networks(config.metric_weights).to(device)
    notes = [networks.unavailable] if networks.unavailable else []
    if log is not None and networks.unavailable:
        log(networks.unavailable)
    style_features = None
    if networks.inception is not None:
        if len(style_paths) < 2:
            notes.append("FID and ArtFID need at least 2 style images (a covariance)")
        else:
            style_features = torch.cat(
                [networks.inception(images[("style", s)].to(device)) for s in style_paths]
            )
    if style_features is not None and len(pair_paths) < 2:
        notes.append("FID and ArtFID need at least 2 outputs per method")
    engine = EngineOptions(device=device)
    runs = []
    for name, model in models.items():
        methods = list(config.transfers) + ([GATYS] if config.gatys_steps else [])
        for method in methods:
            pairs = [
                (images[("content", c)].to(device), images[("style", s)].to(device))
                for c, s in pair_paths
            ]
            records, outputs = measure_pairs(
                model, pairs, method, config.alpha, networks, config.gatys_steps, engine
            )
            runs.append(_summary(name, method, pair_paths, records, outputs, networks,
                                 style_features, device))  # fmt: skip
    return {
        "adain_version": adain.__version__,
        "device": str(device),
        "settings": {
            k: v
            for k, v in asdict(config).items()
            if k in ("alpha", "gatys_steps", "content_size", "style_size", "transfers")
        },
        "pairs": [{"content": str(c), "style": str(s)} for c, s in pair_paths],
        "styles": [str(s) for s in style_paths],
        "metric_networks": {"files": networks.files, "unavailable": networks.unavailable},
        "notes": notes,
        "runs": runs,
    }


def _summary(
    model: str,
    method: str,
    pair_paths: Sequence[tuple[Path, Path]],
    records: list[dict[str, Any]],
    outputs: list[Tensor],
    networks: MetricNetworks,
    style_features: Tensor | None,
    device: torch.device,
) -> dict[str, Any]:
    means = mean_metrics(records)
    fid = art_fid = None
    if networks.inception is not None and style_features is not None and len(outputs) >= 2:
        output_features = torch.cat([networks.inception(o.to(device)) for o in outputs])
        fid = feature_distance(output_features, style_features)
        if means["lpips"] is not None:
            art_fid = (1.0 + means["lpips"]) * (1.0 + fid)  # Wright & Ommer 2022, eq. 3
    records = [
        {"content": str(content), "style": str(style), **record}
        for record, (content, style) in zip(records, pair_paths, strict=True)
    ]
    return {
        "model": model,
        "method": method,
        "seconds_per_image": means.pop("seconds"),
        "means": means,
        "fid": fid,
        "art_fid": art_fid,
        "records": records,
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_table(report: dict[str, Any]) -> str:
    """One row per model and method: seconds per image, the mean metrics, FID and ArtFID."""
    columns = ["seconds_per_image", *METRICS, "fid", "art_fid"]
    header = ["model", "method", *(_SHORT[c] for c in columns)]
    rows = [header]
    for run in report["runs"]:
        values = {"seconds_per_image": run["seconds_per_image"], **run["means"]}
        values.update(fid=run["fid"], art_fid=run["art_fid"])
        rows.append([run["model"], run["method"], *(_cell(values[c]) for c in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    return "\n".join(lines)


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"
