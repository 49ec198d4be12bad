"""Images per second on a GPU: ``python -m benchmarks gpu --help``.

The prepared GPU check of the speed work, one short run: AdaIN at 512 px (the paper's figure:
15 images/s on a Titan X) in reduced precision against the benchmark's baseline in the same
process, and how far the fast path's output is from fp32 eager.

Variants, each with one 512 px style (random weights, He init):
    baseline: the release's layout as plain index-keyed ``nn.Sequential`` modules
        (:mod:`benchmarks.adain_bench`), eager fp32, one image at a time, the style re-encoded
        every time.
    adain: the model itself, ``model(contents, stats, engine=EngineOptions(...))`` with
        ``--precision`` (bf16 autocast by default), optionally ``torch.compile``; the style
        encoded once, the contents run as batches of ``--batch`` (the engine runs a batch that
        fits the GPU as whole maps).

Each variant runs a warm-up (cuDNN autotuning, compilation) and then as many timed rounds as fit
in ``--seconds`` (at least ``--rounds``), with the device synchronised around each; the figure
is the median images/s. ``--device cpu`` runs the same code on the CPU for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.adain_bench import (
    WIDTH,
    _he_init,
    baseline_stylize,
    original_decoder,
    original_encoder,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(
    run: Callable[[], None], images: int, device: torch.device, seconds: float, rounds: int
) -> float:
    """Median images/s over timed rounds of ``run`` (``images`` per round), after a warm-up."""
    run()
    _sync(device)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(rates) < rounds or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        _sync(device)
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(
    device: str = "cuda",
    size: int = 512,
    batch: int = 32,
    precision: str = "bf16",
    compile: bool = False,
    width: int = WIDTH,
    seconds: float = 10.0,
    rounds: int = 3,
) -> dict:
    """The figures of one run, as :func:`main` prints and writes them."""
    from adain.engine.runner import EngineOptions
    from adain.model import AdaIN

    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or --device cpu to smoke-test")
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(batch, 3, size, size, generator=generator).to(target)
    style = torch.rand(1, 3, 512, 512, generator=generator).to(target)

    enc, dec = original_encoder(width), original_decoder(width)
    _he_init([*enc, *dec])
    enc, dec = enc.to(target).eval(), dec.to(target).eval()

    def baseline() -> None:
        baseline_stylize(enc, dec, content[:1], style)

    model = AdaIN(encoder_depth="relu4_1", base_channels=width)
    _he_init(list(model.modules()))
    model = model.to(target).eval().requires_grad_(False)
    engine = EngineOptions(precision=precision, compile=compile)  # type: ignore[arg-type]

    def fast() -> None:
        stats = model.style_stats(style, engine=engine)  # once per batch
        model(content, stats, engine=engine)

    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    with torch.inference_mode():
        baseline_rate = _rate(baseline, 1, target, seconds, rounds)
        adain_rate = _rate(fast, batch, target, seconds, rounds)
        peak = torch.cuda.max_memory_allocated(target) if target.type == "cuda" else None
        actual = model(content[:2], style, engine=engine)
    # Accuracy of the fast path against fp32 eager (the whole-map walk autograd takes), on two
    # of the contents.
    model.decoder.requires_grad_(True)
    expected = model(content[:2], style).detach()
    error = (actual - expected).abs() / expected.abs().max()
    return {
        "device": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
        "size": size,
        "batch": batch,
        "precision": precision,
        "compiled": compile,
        "width": width,
        "baseline_images_per_s": baseline_rate,
        "adain_images_per_s": adain_rate,
        "speedup": adain_rate / baseline_rate,
        "peak_gpu_bytes": peak,
        # Relative to the output's largest magnitude, as the package's tests state tolerances.
        "max_rel_error": error.max().item(),
        "mean_rel_error": error.mean().item(),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512, help="content px (square)")
    parser.add_argument("--batch", type=int, default=32, help="contents per batch for adain")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path")
    parser.add_argument("--width", type=int, default=WIDTH, help="VGG base width (64: real)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per variant")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds at least")
    parser.add_argument("--json", type=Path, default=Path("benchmark_gpu.json"))
    args = parser.parse_args(argv)
    if args.size % 8:
        parser.error(f"--size must be a multiple of 8, got {args.size}")
    result = measure(
        args.device, args.size, args.batch, args.precision, args.compile, args.width,
        args.seconds, args.rounds,
    )  # fmt: skip
    peak = result["peak_gpu_bytes"]
    print(f"{result['device']}, {args.size} px, {args.precision}, batch {args.batch}")
    print(f"baseline (fp32 eager, one at a time): {result['baseline_images_per_s']:8.1f} images/s")
    print(f"adain:                                {result['adain_images_per_s']:8.1f} images/s")
    error = result["max_rel_error"]
    print(f"speedup {result['speedup']:.2f}x; max |adain - fp32 eager| / max |fp32| {error:.1e}")
    if peak is not None:
        print(f"peak GPU memory {peak / 2**30:.2f} GiB")
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
