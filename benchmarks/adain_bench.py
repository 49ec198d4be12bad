"""AdaIN speed and memory against the original layout: ``python -m benchmarks adain --help``.

Each measurement runs in a fresh child process so peak RSS (``ru_maxrss``) and the allocator
setting belong to that measurement alone. Weights are random (He init): speed does not depend on
their values. The content is ``size x size``; the style is ``min(size, 512)`` px square, as
pytorch-AdaIN's test.py defaults to a 512 px style.

Each process first stylises one image, timed and reported apart ("1st s": what a one-shot CLI
call pays, oneDNN primitive creation and fresh memory included), then the timed repeat: the
steady-state seconds per image of a batch folder, a notebook or a server ("s/img", the figure the
ratios use). The --big runs skip the first image.

Variants:
    baseline: the release's layout as plain index-keyed ``nn.Sequential`` modules, eager fp32,
        contiguous tensors, the default allocator, one image at a time, the style re-encoded
        every time (pytorch-AdaIN test.py).
    adain: what ``adain stylize`` runs: :func:`adain.stylize` on tensors, the style encoded per
        image too. It calls the model, whose engine streams the image in strips of rows
        (:mod:`adain.engine`) with the allocator setting scoped to the call.
    call: ``AdaIN.__call__`` as a new user writes it: a model saved with ``save_pretrained``,
        loaded with ``from_pretrained``, called as ``model(content, style)`` with no
        ``no_grad`` and no tuning by the caller.
    *-batch: one style over N contents; the baseline loops, ``adain`` encodes the style once and
        runs the contents as one batch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

WIDTH = 64  # VGG-19 base width: the released model


def _pad() -> nn.Module:
    return nn.ReflectionPad2d(1)


def original_encoder(width: int = WIDTH) -> nn.Sequential:
    """vgg_normalised up to relu4_1 (indices 0-30), as the release's Sequential."""
    w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    plan = [(3, w1), (w1, w1), "P", (w1, w2), (w2, w2), "P"]
    plan += [(w2, w3), (w3, w3), (w3, w3), (w3, w3), "P", (w3, w4)]
    for step in plan:
        if step == "P":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [_pad(), nn.Conv2d(step[0], step[1], 3), nn.ReLU()]
    return nn.Sequential(*layers)


def original_decoder(width: int = WIDTH) -> nn.Sequential:
    """The release's 29-module decoder."""
    w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
    layers: list[nn.Module] = []
    for c_in, c_out, up in [(w4, w3, 1), (w3, w3, 0), (w3, w3, 0), (w3, w3, 0), (w3, w2, 1)]:
        layers += [_pad(), nn.Conv2d(c_in, c_out, 3), nn.ReLU()]
        layers += [nn.Upsample(scale_factor=2, mode="nearest")] if up else []
    layers += [_pad(), nn.Conv2d(w2, w2, 3), nn.ReLU(), _pad(), nn.Conv2d(w2, w1, 3), nn.ReLU()]
    layers += [nn.Upsample(scale_factor=2, mode="nearest"), _pad(), nn.Conv2d(w1, w1, 3)]
    layers += [nn.ReLU(), _pad(), nn.Conv2d(w1, 3, 3)]
    return nn.Sequential(*layers)


def _mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    n, c = feat.shape[:2]
    var = feat.view(n, c, -1).var(dim=2) + eps
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def baseline_stylize(enc: nn.Module, dec: nn.Module, content: torch.Tensor, style: torch.Tensor):
    """pytorch-AdaIN test.py's style_transfer with alpha 1."""
    content_f, style_f = enc(content), enc(style)
    c_mean, c_std = _mean_std(content_f)
    s_mean, s_std = _mean_std(style_f)
    return dec((content_f - c_mean) / c_std * s_std + s_mean)


def stylisation_flops(size: int, style_size: int, style: bool = True) -> float:
    """FLOPs (2 per multiply-add) of the convolutions: content encode and decode, plus the style
    encode when ``style``."""
    enc, dec = original_encoder().to("meta"), original_decoder().to("meta")
    total = 0.0

    def hook(module: nn.Conv2d, _: object, out: torch.Tensor) -> None:
        nonlocal total
        total += 2.0 * out.numel() * module.in_channels * module.kernel_size[0] ** 2

    for module in [*enc, *dec]:
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(hook)
    with torch.no_grad():
        dec(enc(torch.empty(1, 3, size, size, device="meta")))
        if style:
            enc(torch.empty(1, 3, style_size, style_size, device="meta"))
    return total


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median fp32 matrix-multiply throughput of this machine, GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def _images(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(batch, 3, size, size, generator=generator)
    style = torch.rand(1, 3, min(size, 512), min(size, 512), generator=generator)
    return content, style


def _he_init(modules: list[nn.Module]) -> None:
    torch.manual_seed(0)
    for module in modules:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


def child(spec: dict) -> dict:
    """One measurement (run in its own process): times per repeat and peak RSS."""
    variant, size, batch, repeats = spec["variant"], spec["size"], spec["batch"], spec["repeats"]
    content, style = _images(size, batch)
    if variant.startswith("baseline"):
        enc, dec = original_encoder().eval(), original_decoder().eval()
        _he_init([*enc, *dec])

        def run() -> None:
            for i in range(batch):
                baseline_stylize(enc, dec, content[i : i + 1], style)
    elif variant == "call":
        model = _saved_and_loaded(spec)
        if spec.get("max_memory"):  # only when asked: --max-memory is the model's own setting
            from adain import EngineOptions

            model.engine = EngineOptions(max_memory=spec["max_memory"])

        def run() -> None:
            model(content, style)  # what a user writes: no no_grad, no tuning, style re-encoded
    else:
        import adain
        from adain.model import AdaIN

        model = AdaIN(encoder_depth="relu4_1", base_channels=spec.get("width", WIDTH)).eval()
        _he_init(list(model.modules()))
        options = dict(max_memory=spec.get("max_memory"), device="cpu")

        def run() -> None:
            if batch == 1:  # the CLI's path: adain.stylize, the style encoded per image
                adain.stylize(content, style, model=model, output="tensor", **options)
            else:  # a batch folder: the style encoded once, the contents as one batch
                stats = adain.encode_style(style, model, device="cpu")
                adain.stylize(content, stats, model=model, output="tensor", **options)

    def timed() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    # The first image of a process pays one-off costs (oneDNN primitive creation, fresh
    # memory); it is reported apart from the steady-state times. The baseline runs without
    # autograd (in inference mode, as the rows measured before); adain.stylize() sets inference
    # mode itself, and the AdaIN.__call__ row calls a loaded model as a user would, in no mode.
    plain = variant.startswith("baseline")
    context = torch.inference_mode() if plain else contextlib.nullcontext()
    with context:
        first = [timed()] if spec.get("warmup") else []
        times = [timed() for _ in range(repeats)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {**spec, "times": times, "first": first, "peak_rss": peak}


def _saved_and_loaded(spec: dict):
    """A random model written with save_pretrained and loaded back with from_pretrained, as a
    user loads a published one."""
    from adain.model import AdaIN

    model = AdaIN(encoder_depth="relu4_1", base_channels=spec.get("width", WIDTH))
    _he_init(list(model.modules()))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return AdaIN.from_pretrained(folder)


def _run_child(spec: dict) -> dict:
    cmd = [sys.executable, "-m", "benchmarks", "adain", "--child", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(result: dict, gemm: float) -> dict:
    median = statistics.median(result["times"])
    style_size = min(result["size"], 512)
    # Useful work: the baseline's (a style encode per image), whatever a variant skips or adds.
    flops = stylisation_flops(result["size"], style_size) * result["batch"]
    # A narrower VGG (--big-width) does ~(width / 64)^2 of the work.
    flops *= (result.get("width", WIDTH) / WIDTH) ** 2
    return {
        **result,
        "median_s": median,
        "first_s": statistics.median(result["first"]) if result["first"] else None,
        "s_per_image": median / result["batch"],
        "images_per_s": result["batch"] / median,
        "gflop": flops / 1e9,
        "gflop_per_s": flops / median / 1e9,
        "gemm_fraction": flops / median / 1e9 / gemm,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks adain", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (median)")
    parser.add_argument("--batch", type=int, default=16, help="contents for one style (0: skip)")
    parser.add_argument("--batch-size", type=int, default=256, help="content px in the batch run")
    parser.add_argument("--big", type=int, nargs="*", default=[], help="adain only, 1 run each")
    parser.add_argument("--max-memory", default=None, help="adain's budget, e.g. 3G")
    parser.add_argument(
        "--big-width", type=int, default=WIDTH, help="VGG width of the --big runs (64: real)"
    )
    parser.add_argument(
        "--big-variant", choices=("adain", "call"), default="call", help="what --big runs"
    )
    parser.add_argument("--json", type=Path, default=Path("benchmark_adain.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    gemm = gemm_gflops()
    print(f"fp32 GEMM: {gemm:.0f} GFLOP/s on {torch.get_num_threads()} threads", flush=True)
    # Groups of variants measured side by side. Each repeat is its own process, and the
    # variants alternate, so the load from other users of a shared machine hits both alike.
    groups = []
    for size in args.sizes:
        variants = ["baseline", "adain", "call"]
        groups.append([(v, size, 1) for v in variants])
    if args.batch:
        groups.append([(v, args.batch_size, args.batch) for v in ("baseline-batch", "adain-batch")])
    groups += [[(args.big_variant, size, 1)] for size in args.big]
    big_width = {size: args.big_width for size in args.big}

    rows, baseline = [], {}
    header = f"{'variant':<15}{'size':>6}{'s/img':>9}{'img/s':>8}{'vs base':>8}"
    header += f"{'1st s':>8}{'1st vs':>7}{'peak GiB':>9}{'GFLOP/s':>9}{'of GEMM':>8}"
    print(header, flush=True)
    for group in groups:
        repeats = 1 if group[0][1] in args.big else args.repeats
        results: dict[str, dict] = {}
        for _ in range(repeats):
            for variant, size, batch in group:
                spec = {
                    "variant": variant, "size": size, "batch": batch, "repeats": 1,
                    # A first (cold) image, timed apart, except for the single --big runs.
                    "warmup": size not in args.big,
                    "max_memory": args.max_memory,
                    "width": big_width.get(size, WIDTH) if batch == 1 else WIDTH,
                }  # fmt: skip
                result = _run_child(spec)
                if variant in results:
                    results[variant]["times"] += result["times"]
                    results[variant]["first"] += result["first"]
                    results[variant]["peak_rss"] = max(
                        results[variant]["peak_rss"], result["peak_rss"]
                    )
                else:
                    results[variant] = result
        for result in results.values():
            _report(result, gemm, baseline, rows)
    args.json.write_text(json.dumps({"gemm_gflops": gemm, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


def _report(result: dict, gemm: float, baseline: dict, rows: list[dict]) -> None:
    row = _row(result, gemm)
    key = (row["size"], row["batch"])
    if row["variant"].startswith("baseline"):
        baseline[key] = (row["median_s"], row["first_s"])
    base, base_first = baseline.get(key, (None, None))
    row["time_ratio"] = row["median_s"] / base if base else None
    first = row["first_s"]
    row["first_ratio"] = first / base_first if first and base_first else None
    rows.append(row)
    ratio = f"{row['time_ratio']:.2f}x" if row["time_ratio"] is not None else "-"
    first_text = f"{first / row['batch']:.3f}" if first else "-"
    first_ratio = f"{row['first_ratio']:.2f}x" if row["first_ratio"] is not None else "-"
    print(
        f"{row['variant']:<15}{row['size']:>6}{row['s_per_image']:>9.3f}"
        f"{row['images_per_s']:>8.2f}{ratio:>8}{first_text:>8}{first_ratio:>7}"
        f"{row['peak_rss'] / 2**30:>9.2f}"
        f"{row['gflop_per_s']:>9.1f}{row['gemm_fraction']:>8.2f}",
        flush=True,
    )
