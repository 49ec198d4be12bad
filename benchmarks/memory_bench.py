"""Is ``max_memory`` a bound? ``python -m benchmarks memory --help``.

For each image size and budget, a fresh child process builds a full-width model (random
weights: memory does not depend on their values) and the images, then measures one call of
``model(content, style, alpha, engine=EngineOptions(max_memory=BUDGET))``:

    baseline: the process's resident memory just before the call (interpreter, torch, model,
        the content and style tensors);
    peak: the highest resident memory during the call (``VmHWM`` after resetting it through
        ``/proc/self/clear_refs`` at the baseline, so earlier peaks do not count);
    used / budget: ``(peak - baseline) / max_memory``, the figure the README quotes; at most
        1.10 is the promise.

The call includes the style's encoding (as ``adain stylize`` makes it) and its output tensor.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

WIDTH = 64  # VGG-19 base width: the released model
STYLE_SIZE = 512


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(spec: dict) -> dict:
    """One call in this process: baseline, peak and seconds."""
    from adain import EngineOptions
    from adain.model import AdaIN

    torch.manual_seed(0)
    model = AdaIN(encoder_depth="relu4_1", base_channels=spec["width"]).eval()
    model.requires_grad_(False)
    size = spec["size"]
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, size, size, generator=generator)
    style = torch.rand(1, 3, STYLE_SIZE, STYLE_SIZE, generator=generator)
    engine = EngineOptions(max_memory=spec["max_memory"])
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    baseline = _status("VmRSS")
    start = time.perf_counter()
    try:
        out = model(content, style, 0.8, engine=engine)
    except ValueError as error:  # a budget too small for the image: the one-line refusal
        return {**spec, "error": str(error), "baseline": baseline}
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    assert out.shape == content.shape
    return {**spec, "baseline": baseline, "peak": peak, "seconds": seconds}


def _run_child(spec: dict) -> dict:
    command = [sys.executable, "-m", "benchmarks", "memory", "--child", json.dumps(spec)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks memory", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096], help="square px")
    parser.add_argument(
        "--budgets", nargs="+", default=["1G", "2G", "4G"], help="max_memory values"
    )
    parser.add_argument("--width", type=int, default=WIDTH, help="VGG base width (64: real)")
    parser.add_argument("--json", type=Path, default=Path("benchmark_memory.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from adain.engine.plan import format_memory, parse_memory

    rows = []
    print(f"{'size':>6}{'budget':>12}{'baseline':>12}{'used':>12}{'used/budget':>13}{'s':>8}")
    for size in args.sizes:
        for budget in args.budgets:
            spec = {"size": size, "max_memory": parse_memory(budget), "width": args.width}
            row = _run_child(spec)
            rows.append(row)
            if "error" in row:
                print(f"{size:>6}{budget:>12}  refused: {row['error']}", flush=True)
                continue
            used = row["peak"] - row["baseline"]
            row["used"], row["ratio"] = used, used / row["max_memory"]
            print(
                f"{size:>6}{budget:>12}{format_memory(row['baseline']):>12}"
                f"{format_memory(used):>12}{row['ratio']:>13.2f}{row['seconds']:>8.1f}",
                flush=True,
            )
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
