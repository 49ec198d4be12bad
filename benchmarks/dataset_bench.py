"""Stylised-dataset throughput against the old tool's loop: ``python -m benchmarks dataset``.

Both runs stylise the same folder of ``--images`` JPEG files (``--size`` px square, in class
folders) with random styles from ``--styles`` paintings (768x640 px, resized to a 512 px shorter
side as bethgelab/stylize-datasets does), with the real VGG width and random (He) weights: speed
does not depend on the weights' values.

    baseline: bethgelab/stylize-datasets' loop, written here: one image at a time; for each,
        open the content and a random style file, resize the style, encode both, AdaIN, decode,
        save (the release's layout as plain ``nn.Sequential`` modules, in inference mode).
    adain: ``adain stylize-dataset``'s run (:func:`adain.dataset.run.stylize_dataset`): images
        decoded in DataLoader workers, batches through the model, each style encoded once, the
        manifest written.

The two alternate (baseline, adain, baseline, ...), ``--repeats`` times each, so the load of a
shared machine hits both alike; the ratio is of the medians. The GPU estimate is the FLOP count
of one image (content encode + decode; styles are encoded once) at an assumed throughput.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from benchmarks.adain_bench import (
    WIDTH,
    _he_init,
    _mean_std,
    original_decoder,
    original_encoder,
    stylisation_flops,
)

STYLE_SIZE = 512  # bethgelab/stylize-datasets' --style_size
# Sustained throughput assumed for the GPU estimate, FLOP/s: 40% of an H100/H200 SXM's dense
# bf16 peak (989 TFLOP/s), what large cuDNN convolutions in bf16 autocast (--precision bf16)
# sustain; not measured here (no GPU). --gpu-flops takes a measured figure instead.
ASSUMED_GPU_FLOPS = 400e12
# The Stylized-ImageNet recipe: ImageNet's training images at their own sizes (469x387 px on
# average) and Painter by Numbers' 79,433 paintings at a 512 px shorter side (taken as 4:3).
IMAGENET_TRAIN, IMAGENET_PIXELS = 1_281_167, 469 * 387
PAINTINGS, PAINTING_PIXELS = 79_433, 512 * 683


def _make_data(root: Path, images: int, styles: int, size: int) -> tuple[Path, Path]:
    generator = torch.Generator().manual_seed(0)

    def picture(width: int, height: int) -> Image.Image:
        coarse = torch.rand(1, 3, height // 16, width // 16, generator=generator)
        up = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
        noise = torch.rand(1, 3, height, width, generator=generator)
        pixels = (0.8 * up + 0.2 * noise)[0].clamp(0, 1).mul(255).byte().permute(1, 2, 0)
        return Image.fromarray(pixels.numpy())

    source, style_folder = root / "source", root / "styles"
    for i in range(images):
        folder = source / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        picture(size, size).save(folder / f"img{i:05d}.JPEG", quality=90)
    style_folder.mkdir()
    for i in range(styles):
        picture(768, 640).save(style_folder / f"painting{i:03d}.jpg", quality=90)
    return source, style_folder


def baseline(source: Path, styles: Path, out: Path, width: int = WIDTH, alpha: float = 1.0) -> int:
    """The old tool's loop: per image, the style file re-read, resized and re-encoded."""
    enc, dec = original_encoder(width).eval(), original_decoder(width).eval()
    _he_init([*enc, *dec])
    paintings = sorted(styles.iterdir())
    pick = random.Random(0)
    count = 0
    with torch.inference_mode():
        for path in sorted(source.rglob("*.JPEG")):
            content = Image.open(path).convert("RGB")
            style = Image.open(pick.choice(paintings)).convert("RGB")
            scale = STYLE_SIZE / min(style.size)
            style = style.resize((round(style.width * scale), round(style.height * scale)))

            def tensor(image: Image.Image) -> torch.Tensor:
                data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
                return data.view(image.height, image.width, 3).permute(2, 0, 1)[None] / 255.0

            content_f, style_f = enc(tensor(content)), enc(tensor(style))
            c_mean, c_std = _mean_std(content_f)
            s_mean, s_std = _mean_std(style_f)
            t = (content_f - c_mean) / c_std * s_std + s_mean
            image = dec(alpha * t + (1 - alpha) * content_f).clamp(0, 1)[0]
            target = out / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(target, quality=95)
            count += 1
    return count


def adain_run(source: Path, styles: Path, out: Path, model: Path, batch: int, workers: int) -> int:
    from adain.dataset.plan import DatasetConfig
    from adain.dataset.run import stylize_dataset

    config = DatasetConfig(
        source=str(source), styles=[str(styles)], output=out, model=str(model),
        batch_size=batch, workers=workers, device="cpu",
    )  # fmt: skip
    return stylize_dataset(config, rank=0, world=1).images


def _model(folder: Path, width: int) -> Path:
    from adain.model import AdaIN

    model = AdaIN(encoder_depth="relu4_1", base_channels=width).eval()
    _he_init(list(model.modules()))
    model.save_pretrained(folder)
    return folder


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dataset", description=__doc__)
    # 16 images per style, as Stylized-ImageNet: 1,281,167 images over 79,433 paintings.
    parser.add_argument("--images", type=int, default=32, help="content images")
    parser.add_argument("--styles", type=int, default=2, help="style paintings")
    parser.add_argument("--size", type=int, default=224, help="content px (square)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader processes")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (median)")
    parser.add_argument("--width", type=int, default=WIDTH, help="VGG width (64: the real one)")
    parser.add_argument("--gpu-flops", type=float, default=ASSUMED_GPU_FLOPS)
    parser.add_argument("--json", type=Path, default=Path("benchmark_dataset.json"))
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="adain-dataset-bench-"))
    try:
        source, styles = _make_data(root, args.images, args.styles, args.size)
        model = _model(root / "model", args.width)
        times: dict[str, list[float]] = {"baseline": [], "adain": []}
        for repeat in range(args.repeats):
            for variant in times:
                out = root / f"{variant}-{repeat}"
                start = time.perf_counter()
                if variant == "baseline":
                    done = baseline(source, styles, out, args.width)
                else:
                    done = adain_run(source, styles, out, model, args.batch_size, args.workers)
                times[variant].append(time.perf_counter() - start)
                assert done == args.images, (variant, done)
                rate = args.images / times[variant][-1]
                print(f"{variant:<9} run {repeat + 1}: {rate:.2f} images/s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rates = {name: args.images / statistics.median(values) for name, values in times.items()}
    # The GPU estimate is for the real model, whatever --width timed here.
    flops = stylisation_flops(args.size, STYLE_SIZE, style=False)
    per_image_s = flops / args.gpu_flops
    # Convolution FLOPs grow with the pixels: scale the square figures to the recipe's sizes.
    style_flops = stylisation_flops(args.size, STYLE_SIZE) - flops
    recipe_flops = IMAGENET_TRAIN * flops * IMAGENET_PIXELS / args.size**2
    recipe_flops += PAINTINGS * style_flops * PAINTING_PIXELS / STYLE_SIZE**2
    result = {
        "images": args.images, "size": args.size, "styles": args.styles,
        "threads": torch.get_num_threads(), "workers": args.workers, "width": args.width,
        "batch_size": args.batch_size, "images_per_s": rates,
        "speedup": rates["adain"] / rates["baseline"], "gflop_per_image": flops / 1e9,
        "assumed_gpu_tflops": args.gpu_flops / 1e12, "gpu_ms_per_image": per_image_s * 1e3,
        "stylized_imagenet_gpu_hours": recipe_flops / args.gpu_flops / 3600,
    }  # fmt: skip
    print(
        f"{args.size} px, {args.images} images, {torch.get_num_threads()} threads: baseline "
        f"{rates['baseline']:.2f} images/s, adain {rates['adain']:.2f} images/s, "
        f"{result['speedup']:.2f}x (target >= 3x)"
    )
    print(
        f"GPU estimate: {flops / 1e9:.1f} GFLOP per image (styles encoded once) at an assumed "
        f"{args.gpu_flops / 1e12:.0f} TFLOP/s = {per_image_s * 1e3:.2f} ms per image; "
        f"Stylized-ImageNet ({IMAGENET_TRAIN:,} images at their own sizes, {PAINTINGS:,} "
        f"paintings encoded once): {recipe_flops / 1e15:.0f} PFLOP, "
        f"{result['stylized_imagenet_gpu_hours']:.2f} GPU-hours of model time"
    )
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
