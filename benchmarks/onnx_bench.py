"""ONNX Runtime (CPU) against the torch engine: ``python -m benchmarks onnx --help``.

One random full-width model (He init: speed does not depend on the values) is saved and
exported once (:func:`adain.export.onnx.export_onnx`); then each variant runs in a fresh child
process per content size, so its peak RSS (``ru_maxrss``: model, sessions and the call) is its
own. A child encodes a 512 px style once, stylises one ``size x size`` content (timed apart,
"1st s": what a one-shot call pays), then ``--repeat`` more (the median is "s/img"; "CPU s"
is the median process CPU time per image, all threads: the work done, which a loaded machine
distorts less than wall time). Ratios are against the torch engine in the same run.

Variants:
    torch: ``model(content, stats)``, the engine (:mod:`adain.engine`), fp32.
    ort: :class:`adain.export.backend.OnnxRuntimeBackend`, fp32 graphs as exported by default
        (the decoder's upsampling steps fused).
    ort-plain: the same with the upsampling steps as plain layers (``--upsampling``).
    ort-fp16: the default's fp16 graphs (``--fp16``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

STYLE_SIZE = 512


def _child(args: argparse.Namespace) -> None:
    from adain.model import AdaIN

    torch.manual_seed(0)
    content = torch.rand(1, 3, args.size, args.size)
    style = torch.rand(1, 3, STYLE_SIZE, STYLE_SIZE)
    model = AdaIN.from_pretrained(args.model)
    if args.child == "torch":
        run = model
        stats = model.style_stats(style)
    else:
        from adain.export.backend import OnnxRuntimeBackend

        precision = "fp16" if args.child == "ort-fp16" else "fp32"
        run = OnnxRuntimeBackend(args.onnx, precision)
        stats = run.style_stats(style)
    times, cpu = [], []
    with torch.inference_mode():
        for _ in range(1 + args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            run(content, stats, 1.0)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    record = {"first": times[0], "median": statistics.median(times[1:])}
    record |= {"cpu": statistics.median(cpu[1:]), "gib": peak}
    print(json.dumps(record))


def _measure(variant: str, size: int, model: Path, onnx: Path, repeat: int) -> dict:
    command = [sys.executable, "-m", "benchmarks", "onnx", "--child", variant]
    command += ["--size", str(size), "--model", str(model), "--onnx", str(onnx)]
    command += ["--repeat", str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} at {size} px failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: dict[int, dict[str, dict]], variants: list[str]) -> str:
    """One row per size: per variant s/img (1st s) [CPU s/img], then ratios to torch."""
    head = "| content | " + " | ".join(f"{v} s/img (1st) [CPU s]" for v in variants)
    head += " | " + " | ".join(f"{v} vs torch: s, CPU s" for v in variants[1:])
    head += " | peak RSS " + " / ".join(variants) + " |\n"
    lines = [head, "|---" * (2 * len(variants) + 1) + "|\n"]
    for size, row in results.items():
        base = row["torch"]
        times = [
            f"{row[v]['median']:.3g} ({row[v]['first']:.3g}) [{row[v]['cpu']:.3g}]"
            for v in variants
        ]
        ratios = [
            f"{row[v]['median'] / base['median']:.2f}x, {row[v]['cpu'] / base['cpu']:.2f}x"
            for v in variants[1:]
        ]
        peaks = " / ".join(f"{row[v]['gib']:.2f}" for v in variants)
        lines.append(f"| {size} px | " + " | ".join(times + ratios) + f" | {peaks} GiB |\n")
    return "".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks onnx", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeat", type=int, default=3, help="timed images after the first")
    parser.add_argument("--upsampling", action="store_true", help="also time plain upsampling")
    parser.add_argument("--fp16", action="store_true", help="also time the fp16 graphs")
    parser.add_argument("--width", type=int, default=64, help="VGG base width (64: full)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    from adain.export.onnx import export_onnx
    from adain.model import AdaIN

    variants = ["torch", "ort"] + ["ort-plain"] * args.upsampling + ["ort-fp16"] * args.fp16
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, default, plain = Path(tmp, "model"), Path(tmp, "onnx"), Path(tmp, "plain")
        model = AdaIN.with_random_weights(base_channels=args.width)
        model.save_pretrained(model_dir)
        parity = export_onnx(model, default)["parity"]
        if args.upsampling:
            export_onnx(model, plain, upsampling="plain")
        results: dict[int, dict[str, dict]] = {}
        for size in args.sizes:
            results[size] = {}
            for variant in variants:
                onnx = plain if variant == "ort-plain" else default
                results[size][variant] = _measure(variant, size, model_dir, onnx, args.repeat)
                print(f"{size} px {variant}: {results[size][variant]}", file=sys.stderr)
    print(f"threads: torch {torch.get_num_threads()}, ONNX Runtime the same")
    print(f"parity (max abs vs torch): fp32 {parity['fp32']['max_abs']:.2g}, "
          f"fp16 {parity['fp16']['max_abs']:.2g}")  # fmt: skip
    print(_table(results, variants))
    print(json.dumps({"parity": parity, "results": results}))
