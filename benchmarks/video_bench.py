"""Video speed and flicker: ``python -m benchmarks video --help``.

Speed, per frame size (16:9, e.g. 480p = 854x480), on a generated clip of moving shapes with a
sine-tone audio track (H.264 + AAC in MP4), the model's weights random (speed does not depend
on their values):

    video: ``stylize_video`` file to file (decode, stylise in batches, encode, copy the audio),
        the style encoded once.
    still: the still-image path over the same frames extracted as PNG files beforehand:
        ``adain.stylize`` per frame file with the style's preset, each result saved as PNG.
    model: the model's calls alone over the decoded frames in memory, in the same batches: what
        the pipeline would take if decoding and encoding were free. The video path's overhead is
        ``video / model - 1`` (target <= 10 %).

Flicker, on a clip with a still camera and moving objects (the background never changes):

    flicker = mean over consecutive frames t-1, t of the mean absolute change of the output,
    in 8-bit levels, over the pixels whose input did not change at all between t-1 and t.

A per-frame run moves those pixels for two reasons: the moving objects move the frame's global
statistics (what ``--temporal`` smooths), and pixels within the network's receptive field of an
object see it move (which no smoothing of statistics can change). ``flicker(..., margin=32)``
keeps only still pixels at least 32 px from any change, where the first reason dominates.
Reported for a per-frame and a ``--temporal`` run, and their ratio.

Random weights saturate the output (most pixels clip to 0 or 1, where no flicker shows), so the
benchmark rescales the random decoder's last convolution to outputs of mean 0.5 and std 0.2
(:func:`calibrated_model`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

SIZES = {240: 426, 360: 640, 480: 854, 720: 1280, 1080: 1920}


def background(height: int, width: int, seed: int) -> np.ndarray:
    """A still, smooth-textured ``(H, W, 3)`` float background in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((3, max(2, height // 32), max(2, width // 32))))
    smooth = torch.nn.functional.interpolate(
        coarse[None].float(), size=(height, width), mode="bicubic", align_corners=False
    )[0].permute(1, 2, 0)
    return np.clip(0.85 * smooth.numpy() + 0.15 * rng.random((height, width, 3)), 0, 1)


def moving_shapes(
    frames: int, height: int, width: int, seed: int = 0, cut_at: int | None = None
) -> Iterator[np.ndarray]:
    """``(H, W, 3)`` uint8 frames: three coloured squares moving over a still background
    (replaced by another from frame ``cut_at`` on: a scene cut)."""
    rng = np.random.default_rng(seed)
    scene = background(height, width, seed)
    shapes = [
        (
            rng.random(2) * [height, width],  # start
            (rng.random(2) - 0.5) * [height, width] / 20,  # px per frame
            rng.random(3),  # colour
            rng.uniform(0.06, 0.12) * min(height, width),  # half side
        )
        for _ in range(3)
    ]
    y, x = np.mgrid[0:height, 0:width]
    for index in range(frames):
        if cut_at is not None and index == cut_at:
            scene = 1.0 - background(height, width, seed + 1000)  # another scene
        frame = scene.copy()
        for start, velocity, colour, half in shapes:
            cy, cx = (start + velocity * index) % [height, width]
            frame[(np.abs(y - cy) < half) & (np.abs(x - cx) < half)] = colour
        yield (frame * 255 + 0.5).astype(np.uint8)


def flicker(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], margin: int = 0) -> float:
    """Mean absolute frame-to-frame change of ``outputs`` (8-bit levels) over the pixels whose
    ``inputs`` did not change at all (nor any pixel within ``margin`` px), averaged over
    consecutive pairs (see the module doc)."""
    changes = []
    for t in range(1, len(inputs)):
        changed = torch.from_numpy((inputs[t] != inputs[t - 1]).any(axis=2)).float()
        if margin:
            changed = torch.nn.functional.max_pool2d(changed[None], 2 * margin + 1, 1, margin)[0]
        still = changed.numpy() == 0
        if still.any():
            moved = np.abs(outputs[t].astype(np.float64) - outputs[t - 1].astype(np.float64))
            changes.append(float(moved[still].mean()))
    if not changes:
        raise ValueError("no input pixel stayed the same between two frames: no still pixels")
    return float(np.mean(changes))


def write_clip(path: Path, frames: Sequence[np.ndarray] | Iterator[np.ndarray], fps: int = 25):
    """Encode ``frames`` as H.264 (CRF 18) + a 440 Hz AAC tone in ``path``; frames written."""
    import av

    count = 0
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        audio = out.add_stream("aac", rate=16000, layout="mono")
        for image in frames:
            if count == 0:
                video.height, video.width = image.shape[:2]
                video.pix_fmt = "yuv420p"
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = count
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
            count += 1
        out.mux(video.encode(None))
        samples = int(16000 * count / fps)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[None, start : start + 1024]), format="fltp", layout="mono"
            )
            chunk.rate, chunk.pts = 16000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return count


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def frame_flops(height: int, width: int) -> float:
    """FLOPs of the released model's convolutions for one frame (encode + decode)."""
    from benchmarks.adain_bench import original_decoder, original_encoder

    enc, dec = original_encoder().to("meta"), original_decoder().to("meta")
    total = 0.0

    def hook(module: torch.nn.Conv2d, _: object, out: torch.Tensor) -> None:
        nonlocal total
        total += 2.0 * out.numel() * module.in_channels * module.kernel_size[0] ** 2

    for module in [*enc, *dec]:
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(hook)
    with torch.no_grad():
        dec(enc(torch.empty(1, 3, height, width, device="meta")))
    return total


def speed(model, style_file: Path, height: int, frames: int, batch: int, work: Path) -> dict:
    """Frames/s of the video path, the still-image path and the model alone at one size."""
    import av

    from adain import stylize
    from adain.image import save_image
    from adain.video import Stylizer, stylize_video

    width = SIZES.get(height, 2 * round(height * 8 / 9))  # even: yuv420p
    clip = work / f"clip{height}.mp4"
    write_clip(clip, moving_shapes(frames, height, width))
    still_dir = work / f"frames{height}"
    still_dir.mkdir()
    decoded = []
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            decoded.append(frame.to_ndarray(format="rgb24"))
            frame.to_image().save(still_dir / f"{index:05d}.png")
    preset = work / "style.safetensors"
    stylizer = Stylizer(model, style_file, device="cpu")
    stylizer.spec.styles[0].save(preset)
    warm = np.stack(decoded[:batch])  # untimed: first-call set-up at this size, for all three
    stylizer(torch.from_numpy(warm).permute(0, 3, 1, 2).float().div(255))
    record: dict = {}
    video_s = _timed(
        lambda: record.update(stylize_video(clip, preset, work / f"out{height}.mp4", model=model,
                                            device="cpu", batch_size=batch, overwrite=True))
    )  # fmt: skip

    def stills() -> None:
        for path in sorted(still_dir.iterdir()):
            save_image(stylize(path, preset, model=model, device="cpu"), work / f"s{path.name}")

    still_s = _timed(stills)

    def model_only() -> None:
        for start in range(0, len(decoded), batch):
            chunk = np.stack(decoded[start : start + batch])
            stylizer(torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(255))

    model_s = _timed(model_only)
    count = len(decoded)
    return {
        "height": height,
        "width": width,
        "frames": count,
        "video_fps": count / video_s,
        "still_fps": count / still_s,
        "model_fps": count / model_s,
        "video_vs_still": still_s / video_s,
        "overhead": video_s / model_s - 1,
        # The same, against the model's calls inside the video run (the record's
        # model_seconds): what the pipeline adds beyond slowing the model by sharing the cores.
        "overhead_in_run": video_s / record["model_seconds"] - 1,
        "gflop_per_frame": frame_flops(height, width) / 1e9,
    }


def calibrated_model(width: int, frame: np.ndarray, style: torch.Tensor, seed: int = 0):
    """A random-weight model whose decoder's last convolution is rescaled so that ``frame``'s
    stylisation has mean 0.5 and std 0.2 per channel: outputs in range, not clipped."""
    from adain.architecture import DECODER_LAYERS
    from adain.model import AdaIN

    model = AdaIN.with_random_weights(base_channels=width, seed=seed)
    last = getattr(model.decoder, DECODER_LAYERS[-1][0])
    with torch.inference_mode():
        out = model(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255, style)
    mean, std = out.mean(dim=(0, 2, 3)), out.std(dim=(0, 2, 3)).clamp_min(1e-6)
    scale = 0.2 / std
    with torch.no_grad():
        last.weight.mul_(scale.view(-1, 1, 1, 1))
        last.bias.copy_(0.5 - scale * (mean - last.bias))
    return model


def flicker_run(model, style, inputs: list[np.ndarray], batch: int, margins=(0, 32)) -> dict:
    """Flicker of a per-frame run and of a ``--temporal`` run on the same clip, per margin."""
    from adain.video import stylize_frames

    result: dict = {}
    for name, temporal in (("per_frame", False), ("temporal", True)):
        outputs = [
            (out.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            for out in stylize_frames(inputs, style, model=model, device="cpu",
                                      batch_size=batch, temporal=temporal)
        ]  # fmt: skip
        for margin in margins:
            result.setdefault(f"margin{margin}", {})[name] = flicker(inputs, outputs, margin)
    for row in result.values():
        row["ratio"] = row["temporal"] / row["per_frame"]
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks video", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[480, 720], help="frame heights")
    parser.add_argument("--frames", type=int, default=8, help="frames per speed clip")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=64, help="model width (64: the release)")
    parser.add_argument("--flicker-size", type=int, nargs=2, default=[180, 320], metavar=("H", "W"))
    parser.add_argument("--flicker-frames", type=int, default=24, help="0: skip")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from adain.image import to_pil
    from adain.model import AdaIN

    model = AdaIN.with_random_weights(base_channels=args.width)
    style = torch.from_numpy(background(256, 256, 7)).permute(2, 0, 1)[None].float()
    results: dict = {"torch_threads": torch.get_num_threads(), "width": args.width, "speed": []}
    with tempfile.TemporaryDirectory(prefix="adain-video-bench-") as tmp:
        work = Path(tmp)
        style_file = work / "style.png"
        to_pil(style).save(style_file)
        print(
            "size        frames  video f/s  still f/s  model f/s  video/still  overhead  in run"
            "  GFLOP/f"
        )
        for height in args.sizes:
            row = speed(model, style_file, height, args.frames, args.batch_size, work)
            results["speed"].append(row)
            print(
                f"{row['width']}x{row['height']:<6} {row['frames']:6d} {row['video_fps']:10.3f} "
                f"{row['still_fps']:10.3f} {row['model_fps']:10.3f} "
                f"{row['video_vs_still']:11.2f}x {row['overhead']:8.1%} "
                f"{row['overhead_in_run']:7.1%} "
                f"{row['gflop_per_frame']:8.1f}"
            )
    if args.flicker_frames:  # 0: speed only
        height, width = args.flicker_size
        inputs = list(moving_shapes(args.flicker_frames, height, width, seed=1))
        calibrated = calibrated_model(args.width, inputs[0], style)
        results["flicker"] = flicker_run(calibrated, style, inputs, args.batch_size)
        for name, row in results["flicker"].items():
            print(
                f"flicker {name} ({width}x{height}, {args.flicker_frames} frames, 8-bit levels "
                f"on still pixels): per-frame {row['per_frame']:.3f}, --temporal "
                f"{row['temporal']:.3f} ({row['ratio']:.2f}x)"
            )
    for row in results["speed"]:
        if row["height"] == 720:
            minute = 60 * 25 / row["video_fps"]
            print(f"one minute of 720p at 25 fps: {minute / 60:.1f} min on this CPU")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
