"""EFDM against AdaIN: time, memory and the preset's approximation (``python -m benchmarks efdm``).

Time and memory: ``model(content, style, transfer=...)`` at each ``--size`` (content ``size``
px square, the style 512 px square, as ``benchmarks/adain_bench.py``), each transfer in a fresh
child process so that its peak RSS (``ru_maxrss``) is its own; one untimed run first, then the
mean of ``--repeat`` runs. The ratio EFDM/AdaIN is taken between runs at the same size on the
same machine. ``sort s`` is the EFDM step alone (:func:`adain.engine.matching.match_in_place` on
a relu4_1 map of that size), timed in the parent.

Preset error (``--preset-error``): a preset keeps :data:`adain.style.PRESET_QUANTILES` (or
``--quantiles``) per channel instead of the full sorted style. For each example content and
style (``examples/``), styles resized to ``--style-size``, it compares EFDM with the preset
against EFDM with the full style: the relu4_1 targets (RMS of the difference over the RMS of the
targets) and the decoded images (mean and max absolute difference, images in [0, 1]).

Weights are random (He init, width 64): speed does not depend on their values; the preset error
is measured on features of random filters, not of the trained VGG (none is downloaded here).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
STYLE_SIZE = 512  # px, square, as benchmarks/adain_bench.py


def _model():
    from adain.model import AdaIN

    return AdaIN.with_random_weights(encoder_depth="relu4_1").eval()


def _image(seed: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 16, 16, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)


def _child(size: int, transfer: str, repeat: int) -> dict[str, float]:
    """One transfer at one size, in this process: seconds per image and peak RSS."""
    model = _model()
    content, style = _image(0, size), _image(1, STYLE_SIZE)
    with torch.inference_mode():
        model(content, style, transfer=transfer)  # untimed: first-call costs
        start = time.perf_counter()
        for _ in range(repeat):
            model(content, style, transfer=transfer)
        seconds = (time.perf_counter() - start) / repeat
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"seconds": seconds, "peak_rss_gib": peak}


def _sort_seconds(size: int, repeat: int) -> float:
    from adain.engine.matching import match_in_place

    cells = -(-size // 8)
    feats = torch.randn(1, 512, cells, cells).relu()  # ties at 0, as relu4_1 has
    quantiles = torch.randn(1, 512, (STYLE_SIZE // 8) ** 2).sort(-1).values
    start = time.perf_counter()
    for _ in range(repeat):
        match_in_place(feats.clone(), [quantiles], 1.0, None)
    return (time.perf_counter() - start) / repeat


def timing(sizes: list[int], repeat: int) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        row: dict[str, float] = {"size": size}
        for transfer in ("adain", "efdm"):
            command = [sys.executable, "-m", "benchmarks", "efdm", "--child", str(size), transfer]
            command += ["--repeat", str(repeat)]
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            row[f"{transfer}_s"] = result["seconds"]
            row[f"{transfer}_peak_rss_gib"] = result["peak_rss_gib"]
        row["ratio"] = row["efdm_s"] / row["adain_s"]
        row["sort_s"] = _sort_seconds(size, repeat)
        rows.append(row)
        print(
            f"{size:>5} px  adain {row['adain_s']:7.2f} s ({row['adain_peak_rss_gib']:.2f} GiB)"
            f"  efdm {row['efdm_s']:7.2f} s ({row['efdm_peak_rss_gib']:.2f} GiB)"
            f"  efdm/adain {row['ratio']:.3f}  sort {row['sort_s']:.2f} s",
            flush=True,
        )
    return rows


def preset_error(style_size: int, counts: list[int]) -> list[dict[str, float]]:
    from adain.api import as_tensor
    from adain.efdm import resample
    from adain.style import StyleStats

    model = _model()
    contents = sorted((ROOT / "examples" / "content").glob("*.jpg"))
    styles = sorted((ROOT / "examples" / "style").glob("*.jpg"))
    rows = []
    with torch.inference_mode():
        for count in counts:
            feature_errors, mean_errors, max_errors = [], [], []
            for style_path in styles:
                style = as_tensor(style_path, style_size, name="style")
                full = model.style_stats(style, transfer="efdm")
                kept = StyleStats(full.mean, full.std, quantiles=resample(full.quantiles, count))
                for content_path in contents:
                    content = as_tensor(content_path, 512, name="content")
                    feats = model.encode(content)["relu4_1"]
                    exact = model.transfer(feats, [full], transfer="efdm")
                    approx = model.transfer(feats, [kept], transfer="efdm")
                    rms = exact.square().mean().sqrt()
                    feature_errors.append(float((approx - exact).square().mean().sqrt() / rms))
                    diff = (model.decode(approx) - model.decode(exact)).abs()
                    mean_errors.append(float(diff.mean()))
                    max_errors.append(float(diff.max()))
            row = {
                "style_size": style_size,
                "values_per_channel": full.quantiles.shape[-1],
                "quantiles": count,
                "feature_rel_rms": sum(feature_errors) / len(feature_errors),
                "image_mean_abs": sum(mean_errors) / len(mean_errors),
                "image_max_abs": max(max_errors),
            }
            rows.append(row)
            print(
                f"style {style_size} px ({row['values_per_channel']} values/channel), "
                f"{count} quantiles: features {100 * row['feature_rel_rms']:.3f} % RMS, image "
                f"mean {row['image_mean_abs']:.5f}, max {row['image_max_abs']:.4f}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks efdm", description=__doc__)
    parser.add_argument("--size", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--preset-error", action="store_true", help="measure presets instead")
    parser.add_argument("--style-size", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--quantiles", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "TRANSFER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.child:
        print(json.dumps(_child(int(args.child[0]), args.child[1], args.repeat)))
        return
    if args.preset_error:
        rows = [row for size in args.style_size for row in preset_error(size, args.quantiles)]
    else:
        rows = timing(args.size, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
