"""Gram-path speed: ``python -m benchmarks gatys --help``.

Seconds per L-BFGS iteration of :func:`adain.gatys.gatys` against a plain baseline closure
written here (an ``nn.Sequential`` VGG-19 to relu5_1 over the same weights, the seed's losses
inline, the PyTorch-tutorial loop), and the achieved GFLOP/s (FLOPs of one forward + backward
counted by ``torch.utils.flop_counter``). Weights are random (He init): speed does not depend on
their values. ``--warm-start`` also measures how many iterations the AdaIN start saves over the
content start (random weights too, so the AdaIN output is not a real stylisation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from adain.gatys import GatysConfig, gatys
from adain.model import AdaIN


def random_model(width: int, seed: int = 0) -> AdaIN:
    """A randomly initialised AdaIN; He init keeps activations alive through 16 convolutions."""
    torch.manual_seed(seed)
    model = AdaIN(encoder_depth="relu5_1", base_channels=width).eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d) and not name.endswith("preprocess"):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        model.encoder.conv1_1.weight.mul_(1 / 64.0)  # the Caffe input spans +-128
    return model


def smooth_images(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and style ``(1, 3, size, size)`` in [0, 1] with structure at several scales."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(2):
        coarse = torch.rand(1, 3, max(2, size // 16), max(2, size // 16), generator=generator)
        up = F.interpolate(coarse, size=(size, size), mode="bilinear")
        images.append(0.8 * up + 0.2 * torch.rand(1, 3, size, size, generator=generator))
    return images[0].clamp(0, 1), images[1].clamp(0, 1)


def plain_vgg(model: AdaIN, pooling: str) -> tuple[nn.Sequential, dict[int, str]]:
    """The encoder's modules as a plain Sequential, and index -> layer name of its outputs."""
    layers: list[nn.Module] = [model.encoder.preprocess]
    names: dict[int, str] = {}
    for name in model.encoder.layer_names:
        if name.startswith("conv"):
            layers.append(getattr(model.encoder, name))
        elif name.startswith("relu"):
            layers.append(nn.ReLU())
        else:
            pool = nn.AvgPool2d if pooling == "avg" else nn.MaxPool2d
            layers.append(pool(2, 2, ceil_mode=True))
        names[len(layers) - 1] = name
    return nn.Sequential(*layers), names


def baseline_closure(model: AdaIN, content: torch.Tensor, style: torch.Tensor, cfg: GatysConfig):
    """The textbook loop: Sequential forward, losses inline, one closure per L-BFGS iteration."""
    net, names = plain_vgg(model, cfg.pooling)
    wanted = set(cfg.content_layers) | set(cfg.style_layers)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for index, layer in enumerate(net):
            x = layer(x)
            if names.get(index) in wanted:
                out[names[index]] = x
        return out

    def gram(f: torch.Tensor) -> torch.Tensor:
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2)

    with torch.no_grad():
        targets_c = features(content)
        targets_s = {n: gram(f) for n, f in features(style).items()}
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], max_iter=1, history_size=cfg.history_size)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        feats = features(image)
        loss = sum(0.5 * (feats[n] - targets_c[n]).pow(2).sum() for n in cfg.content_layers)
        loss = cfg.content_weight * loss
        for n, w in zip(cfg.style_layers, cfg.layer_weights, strict=True):
            c, m = feats[n].shape[1], feats[n].shape[2] * feats[n].shape[3]
            e = (gram(feats[n]) - targets_s[n]).pow(2).sum() / (4 * c**2 * m**2)
            loss = loss + cfg.style_weight * w * e
        loss.backward()
        return loss

    return optimizer, closure


def time_baseline(model, content, style, cfg, iterations: int, warmup: int) -> list[float]:
    optimizer, closure = baseline_closure(model, content, style, cfg)
    stamps = [time.perf_counter()]
    for _ in range(warmup + iterations):
        optimizer.step(closure)
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]


def time_gatys(model, content, style, cfg, iterations: int, warmup: int) -> list[float]:
    stamps: list[float] = []
    config = dataclasses.replace(cfg, steps=warmup + iterations)
    stamps.append(time.perf_counter())
    gatys(
        content, style, config, model=model, callback=lambda *_: stamps.append(time.perf_counter())
    )
    # The first interval also holds the target encoding; the warm-up drops it.
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]


def iteration_flops(model, content, style, cfg) -> float:
    """FLOPs of one closure call (forward to relu5_1 + backward to the pixels)."""
    optimizer, closure = baseline_closure(model, content, style, cfg)
    with FlopCounterMode(display=False) as counter:
        closure()
    return float(counter.get_total_flops())


def measure(size: int, width: int, iterations: int, warmup: int, rounds: int) -> dict:
    """Both variants in alternating rounds, so a change in machine load hits both alike."""
    model = random_model(width)
    content, style = smooth_images(size)
    cfg = GatysConfig.gatys2016(init="content")
    flops = iteration_flops(model, content, style, cfg)
    row = {"size": size, "width": width, "gflop_per_iteration": flops / 1e9}
    timers = {"baseline": time_baseline, "gatys": time_gatys}
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name] += timer(model, content, style, cfg, iterations, warmup)
    for name, values in times.items():
        median = statistics.median(values)
        row[name] = {"s_per_iter": median, "min": min(values), "gflops": flops / median / 1e9}
    return row


def warm_start(size: int, width: int, checkpoints: list[int]) -> dict:
    from adain.compare import warm_start_saving

    model = random_model(width)
    content, style = smooth_images(size)
    cfg = GatysConfig.gatys2016()
    result = warm_start_saving(content, style, model, cfg, checkpoints)
    return {"size": size, "width": width, "weights": "random (He init)", **result}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gatys", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--width", type=int, default=64, help="VGG base width (64: VGG-19)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per variant")
    parser.add_argument("--warm-start", type=int, default=0, help="size in px (0: skip)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--json", type=Path, default=Path("benchmark_gatys.json"))
    args = parser.parse_args(argv)

    report: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": []}
    report["loadavg_start"] = os.getloadavg()  # other work on the machine skews every figure
    print(
        f"{'size':>5} {'GFLOP/it':>9} {'baseline s/it':>14} {'gatys() s/it':>13} "
        f"{'baseline GFLOP/s':>17} {'gatys() GFLOP/s':>16}"
    )
    for size in args.sizes:
        row = measure(size, args.width, args.iterations, args.warmup, args.rounds)
        report["rows"].append(row)
        base, ours = row["baseline"], row["gatys"]
        print(
            f"{size:>5} {row['gflop_per_iteration']:>9.1f} {base['s_per_iter']:>14.3f} "
            f"{ours['s_per_iter']:>13.3f} {base['gflops']:>17.1f} {ours['gflops']:>16.1f}"
        )
    if args.warm_start:
        result = warm_start(args.warm_start, args.width, args.checkpoints)
        report["warm_start"] = result
        print(f"warm start at {args.warm_start} px, width {args.width}, random weights:")
        for target in result["targets"]:
            print(
                f"  style loss {target['style_loss']:.4g}: content start "
                f"{target['content_iterations']} it, AdaIN start {target['adain_iterations']} it"
            )
    report["loadavg_end"] = os.getloadavg()
    print(f"load average (1, 5, 15 min): {report['loadavg_start']} -> {report['loadavg_end']}")
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
