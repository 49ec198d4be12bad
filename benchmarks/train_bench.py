"""Training-step speed: ``python -m benchmarks train --help``.

Images per second of :func:`train.loop.train_step` (the step ``fit`` runs: Accelerate, the named
encoder, ``adain.losses``) against a plain baseline loop written here in pytorch-AdaIN's style
(index-keyed ``nn.Sequential`` encoder slices and decoder, ``nn.MSELoss`` losses inline, Adam),
over the same random weights and the same batch, in one process, alternating the two so machine
load hits both alike. ``--data`` also measures the data pipeline (decode, resize, crop) alone.
Weights are random (He init): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from adain.architecture import DECODER_LAYERS
from adain.decoder import Decoder
from train.config import TrainConfig
from train.encoders import build_encoder
from train.loop import train_step


def baseline_networks(
    encoder: nn.Module, decoder: Decoder
) -> tuple[list[nn.Sequential], nn.Sequential]:
    """pytorch-AdaIN's net.py layout: encoder slices to relu1_1..relu4_1, a Sequential decoder."""

    def conv(module: nn.Conv2d) -> list[nn.Module]:
        plain = nn.Conv2d(module.in_channels, module.out_channels, 3)
        plain.load_state_dict(module.state_dict())
        return [nn.ReflectionPad2d(1), plain]

    pool = nn.MaxPool2d(2, 2, ceil_mode=True)
    e = encoder
    slices = [
        nn.Sequential(e.preprocess, *conv(e.conv1_1), nn.ReLU()),
        nn.Sequential(*conv(e.conv1_2), nn.ReLU(), pool, *conv(e.conv2_1), nn.ReLU()),
        nn.Sequential(*conv(e.conv2_2), nn.ReLU(), pool, *conv(e.conv3_1), nn.ReLU()),
        nn.Sequential(
            *conv(e.conv3_2),
            nn.ReLU(),
            *conv(e.conv3_3),
            nn.ReLU(),
            *conv(e.conv3_4),
            nn.ReLU(),
            pool,
            *conv(e.conv4_1),
            nn.ReLU(),
        ),
    ]
    for s in slices:
        s.requires_grad_(False)
    layers: list[nn.Module] = []
    for name, _, _, upsample in DECODER_LAYERS:
        layers += conv(getattr(decoder, name))
        if name != DECODER_LAYERS[-1][0]:
            layers.append(nn.ReLU())
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return slices, nn.Sequential(*layers)


def baseline_step(slices, decoder, optimizer, content, style, style_weight: float = 10.0) -> None:
    """pytorch-AdaIN train.py's iteration: encode, AdaIN, decode, re-encode, MSE losses, Adam."""
    mse = nn.MSELoss()

    def feats(x):
        out = []
        for s in slices:
            x = s(x)
            out.append(x)
        return out

    def mean_std(f, eps=1e-5):
        b, c = f.shape[:2]
        var = f.view(b, c, -1).var(dim=2) + eps
        return f.view(b, c, -1).mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)

    style_feats = feats(style)
    content_feat = feats(content)[-1]
    c_mean, c_std = mean_std(content_feat)
    s_mean, s_std = mean_std(style_feats[-1])
    t = (content_feat - c_mean) / c_std * s_std + s_mean
    g_feats = feats(decoder(t))
    loss_c = mse(g_feats[-1], t)
    loss_s = 0.0
    for g, s in zip(g_feats, style_feats, strict=True):
        gm, gs = mean_std(g)
        sm, ss = mean_std(s)
        loss_s = loss_s + mse(gm, sm) + mse(gs, ss)
    loss = loss_c + style_weight * loss_s
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(batch: int, size: int, width: int, steps: int, warmup: int) -> dict:
    from accelerate import Accelerator

    config = TrainConfig(batch_size=batch, crop_size=size, load_size=size, base_channels=width)
    encoder = build_encoder("random", width)
    torch.manual_seed(0)
    decoder = Decoder(width)
    slices, plain_decoder = baseline_networks(encoder, decoder)
    accelerator = Accelerator()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 1 / (1 + config.lr_decay * t)
    )
    decoder, optimizer = accelerator.prepare(decoder, optimizer)
    plain_optimizer = torch.optim.Adam(plain_decoder.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(batch, 3, size, size, generator=generator)
    style = torch.rand(batch, 3, size, size, generator=generator)

    def ours() -> None:
        train_step(accelerator, encoder, decoder, optimizer, scheduler, content, style, config)

    def base() -> None:
        baseline_step(slices, plain_decoder, plain_optimizer, content, style)

    times: dict[str, list[float]] = {"baseline": [], "train_step": []}
    for i in range(warmup + steps):
        for name, fn in (("baseline", base), ("train_step", ours)):
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    row = {"batch": batch, "size": size, "width": width, "steps": steps}
    for name, values in times.items():
        median = statistics.median(values)
        row[name] = {"s_per_step": median, "images_per_s": batch / median, "all_s": values}
    row["ratio_images_per_s"] = row["train_step"]["images_per_s"] / row["baseline"]["images_per_s"]
    return row


def measure_data(size: int, load_size: int, workers: int, batches: int, batch: int) -> dict:
    """Images/s of the loader alone on generated 640x512 JPEGs (decode, resize, crop)."""
    from PIL import Image

    from train.data import ImageSource, PairSource, list_items, make_loader

    with tempfile.TemporaryDirectory() as folder:
        generator = torch.Generator().manual_seed(0)
        for i in range(16):
            array = (torch.rand(512, 640, 3, generator=generator) * 255).byte().numpy()
            Image.fromarray(array).save(Path(folder) / f"{i}.jpg", quality=90)
        items = list_items([folder])
        pairs = PairSource(
            ImageSource(items, load_size, size), ImageSource(items, load_size, size, stream=1)
        )
        loader = iter(make_loader(pairs, batch, num_workers=workers))
        next(loader)  # worker start-up
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        elapsed = time.perf_counter() - start
    # Each pair is two images (content and style).
    return {"workers": workers, "image_pairs_per_s": batches * batch / elapsed}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train", description=__doc__)
    parser.add_argument("--batch", type=int, default=8, help="paper: 8")
    parser.add_argument("--size", type=int, default=256, help="crop side in px; paper: 256")
    parser.add_argument("--width", type=int, default=64, help="VGG base width (64: VGG-19)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps of each loop")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", action="store_true", help="also time the data loader")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmark_train.json"))
    args = parser.parse_args(argv)

    report: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report["device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    row = measure(args.batch, args.size, args.width, args.steps, args.warmup)
    report["step"] = row
    print(
        f"batch {row['batch']} at {row['size']} px, width {row['width']}, {report['device']}, "
        f"{report['threads']} threads, median of {row['steps']} steps:\n"
        f"  baseline   {row['baseline']['s_per_step']:.2f} s/step "
        f"{row['baseline']['images_per_s']:.3f} images/s\n"
        f"  train_step {row['train_step']['s_per_step']:.2f} s/step "
        f"{row['train_step']['images_per_s']:.3f} images/s\n"
        f"  ratio (train_step / baseline images/s): {row['ratio_images_per_s']:.3f}"
    )
    if args.data:
        data = measure_data(args.size, 2 * args.size, args.workers, 4, args.batch)
        report["data"] = data
        print(
            f"  data loader alone: {data['image_pairs_per_s']:.1f} image pairs/s "
            f"({data['workers']} workers)"
        )
    args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(__import__("sys").argv[1:])
