"""``adain video`` and ``adain.video``: clips generated here with PyAV, a tiny random model.

Each clip is a few frames of moving squares over a gradient (and a 440 Hz tone): small enough
that a test takes a second or two, real enough to go through FFmpeg's demuxers, decoders and
encoders the way a user's file does.
"""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

av = pytest.importorskip("av", reason="needs the video extra: pip install '.[video]'")

from adain.cli import app  # noqa: E402
from adain.image import to_pil  # noqa: E402
from adain.video import StatsSmoother, stylize_frames, stylize_video  # noqa: E402
from adain.video.source import open_source  # noqa: E402
from benchmarks.video_bench import calibrated_model, flicker, moving_shapes  # noqa: E402
from tests.conftest import smooth_image  # noqa: E402

TB = Fraction(1, 1000)  # milliseconds: the time base the clips are written in


def shapes(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame ``index``: a colour gradient with a yellow square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 80)], -1)
    cx = (index * 5) % width
    image[(np.abs(x - cx) < 6) & (np.abs(y - height // 2) < 6)] = [250, 250, 30]
    return image.astype(np.uint8)


def write_clip(
    path: Path,
    frames: int = 8,
    size: tuple[int, int] = (64, 48),
    pts_ms: list[int] | None = None,
    audio: bool = True,
    rotation: int | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """A clip of ``shapes`` frames (time stamps ``pts_ms``, default 25 fps) + an AAC tone."""
    width, height = size
    pts_ms = pts_ms or [i * 40 for i in range(frames)]
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = TB
        if rotation:
            video.set_display_rotation(rotation)
        tone = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        for index, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(shapes(index, height, width), format="rgb24")
            frame.pts, frame.time_base = pts, TB
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if tone is not None:
            samples = 16 * (pts_ms[-1] + 40)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(wave[None, start : start + 1024]), "fltp", "mono"
                )
                chunk.rate, chunk.pts = 16000, start
                out.mux(tone.encode(chunk))
            out.mux(tone.encode(None))
    return path


def probe(path: Path) -> dict:
    """Frames (RGB), their times in seconds, rotation, sizes, durations and audio packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times, rotations = [], [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base))
            rotations.append(frame.rotation)
        info = {
            "frames": frames,
            "times": times,
            "rotation": rotations[0],
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "duration": container.duration / 1e6,
            "video_duration": float(stream.duration * stream.time_base)
            if stream.duration is not None
            else None,  # Matroska stores no stream duration
        }
    with av.open(str(path)) as container:
        info["audio"] = [
            (bytes(p), float(p.pts * p.time_base))
            for p in container.demux(audio=0)
            if p.size
        ] if container.streams.audio else []  # fmt: skip
    return info


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    to_pil(smooth_image(2, 48, 56)).save(path)
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


def lossless() -> dict:
    """Encoder settings whose only loss is RGB <-> YUV rounding."""
    return {"crf": 0, "pix_fmt": "yuv444p"}


def reference(model, frames: list[np.ndarray], style: Path) -> list[np.ndarray]:
    """The model's own output on ``frames``, written independently of adain.video."""
    from adain.image import load_image, to_tensor

    style_tensor = to_tensor(load_image(style))
    batch = torch.stack(
        [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).float() / 255 for f in frames]
    )
    with torch.inference_mode():
        out = model(batch, style_tensor).clamp(0, 1)
    return [(o.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for o in out]


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# Container handling ---------------------------------------------------------------------------


def test_file_to_file_keeps_frames_time_stamps_duration_audio(tiny_model, clip, style_file):
    out = clip.with_name("out.mp4")
    record = stylize_video(clip, style_file, out, model=tiny_model, device="cpu", **lossless())
    source, result = probe(clip), probe(out)
    assert record["frames"] == len(result["frames"]) == len(source["frames"]) == 8
    assert result["times"] == source["times"]
    assert result["size"] == source["size"] == (64, 48)
    assert result["duration"] == pytest.approx(source["duration"], abs=1e-3)
    assert result["video_duration"] == pytest.approx(source["video_duration"], abs=1e-3)
    assert result["audio"] == source["audio"] and len(source["audio"]) > 3  # bytes and times
    assert record["copied_streams"] == ["audio"] and record["style_encodings"] == 1
    # The pixels are the model's, through a lossless encoder (RGB <-> YUV rounding only).
    expected = reference(tiny_model, source["frames"], style_file)
    errors = [mean_abs(a, b) for a, b in zip(result["frames"], expected, strict=True)]
    assert max(errors) < 1.5, f"mean abs error per frame (8-bit levels): {errors}"
    assert mean_abs(result["frames"][0], source["frames"][0]) > 20  # stylised, not copied


def test_variable_frame_rate_time_stamps_are_kept(tiny_model, tmp_path, style_file):
    pts = [0, 40, 80, 200, 240, 400, 420, 700]
    clip = write_clip(tmp_path / "vfr.mp4", pts_ms=pts, audio=False)
    for ext in ("mp4", "mkv"):
        out = tmp_path / f"vfr_out.{ext}"
        stylize_video(clip, style_file, out, model=tiny_model, device="cpu", batch_size=3)
        result = probe(out)
        assert result["times"] == pytest.approx([p / 1000 for p in pts], abs=1e-6)
        # MP4 derives its duration from decode time stamps, the same way for input and output;
        # Matroska's is the last frame's time plus its duration (1/25 s here).
        expected = probe(clip)["duration"] if ext == "mp4" else 0.74
        assert result["duration"] == pytest.approx(expected, abs=1e-3), ext


def test_rotation_metadata_is_applied_to_the_pixels(tiny_model, tmp_path, style_file):
    clip = write_clip(tmp_path / "rot.mp4", frames=4, rotation=90, audio=False)
    source = probe(clip)
    assert source["rotation"] == 90 and source["size"] == (64, 48)
    out = tmp_path / "rot_out.mp4"
    record = stylize_video(clip, style_file, out, model=tiny_model, device="cpu", **lossless())
    result = probe(out)
    assert (record["width"], record["height"]) == (48, 64)
    assert result["size"] == (48, 64) and result["rotation"] == 0
    upright = [np.rot90(f) for f in source["frames"]]  # 90 degrees counter-clockwise
    expected = reference(tiny_model, upright, style_file)
    assert max(mean_abs(a, b) for a, b in zip(result["frames"], expected, strict=True)) < 1.5


def test_odd_size_keeps_its_size_in_yuv444p_or_pads_for_yuv420p(tiny_model, tmp_path, style_file):
    clip = write_clip(tmp_path / "odd.mkv", frames=3, size=(63, 47), pix_fmt="yuv444p")
    notes: list[str] = []
    out = tmp_path / "odd.mp4"
    stylize_video(clip, style_file, out, model=tiny_model, device="cpu", notes=notes.append)
    kept = probe(out)
    assert kept["size"] == (63, 47) and kept["pix_fmt"] == "yuv444p"
    assert "yuv420p needs even sizes" in notes[0]
    padded = tmp_path / "odd420.mp4"
    record = stylize_video(
        clip, style_file, padded, model=tiny_model, device="cpu", pix_fmt="yuv420p",
        notes=notes.append,
    )  # fmt: skip
    result = probe(padded)
    assert result["size"] == (64, 48) and result["pix_fmt"] == "yuv420p"
    assert record["encoded_size"] == [64, 48] and "padded" in notes[1]
    # The padding repeats the last column and row.
    frame = result["frames"][0].astype(int)
    assert np.abs(frame[:, 63] - frame[:, 62]).mean() < 6
    assert np.abs(frame[47] - frame[46]).mean() < 6


def test_subtitles_are_copied_and_mp4_refuses_what_it_cannot_hold(tiny_model, tmp_path, style_file):
    clip = tmp_path / "subs.mkv"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        subs = out.add_mux_stream("subrip")
        subs.time_base = TB
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(shapes(index), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for index, text in enumerate([b"first line", b"second line"]):
            packet = av.Packet(text)
            packet.stream, packet.time_base = subs, TB
            packet.pts = packet.dts = index * 80
            packet.duration = 60
            out.mux(packet)
    out_file = tmp_path / "subs_out.mkv"
    stylize_video(clip, style_file, out_file, model=tiny_model, device="cpu")
    with av.open(str(out_file)) as container:
        texts = [(bytes(p), p.pts) for p in container.demux(subtitles=0) if p.size]
    assert texts == [(b"first line", 0), (b"second line", 80)]
    with pytest.raises(ValueError, match=r"subtitle stream \(srt\) cannot go into \.mp4"):
        stylize_video(clip, style_file, tmp_path / "subs.mp4", model=tiny_model, device="cpu")
    assert not (tmp_path / "subs.mp4").exists()


# The model: style once, batches, smoothing ------------------------------------------------------


def test_the_style_is_encoded_once_per_video(tiny_model, clip, style_file, monkeypatch):
    calls = {"style_stats": 0, "forward": 0}
    style_stats, forward = tiny_model.style_stats, tiny_model.forward

    def counted_style_stats(*args, **kwargs):
        calls["style_stats"] += 1
        return style_stats(*args, **kwargs)

    def counted_forward(*args, **kwargs):
        calls["forward"] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_model, "style_stats", counted_style_stats)
    monkeypatch.setattr(tiny_model, "forward", counted_forward)
    style2 = style_file.with_name("style2.png")
    to_pil(smooth_image(5, 40, 40)).save(style2)
    record = stylize_video(
        clip, [style_file, style2], clip.with_name("o.mp4"), model=tiny_model, device="cpu",
        weights=[1, 3], batch_size=3,
    )  # fmt: skip
    assert record["frames"] == 8
    assert calls == {"style_stats": 2, "forward": 3}  # 2 styles once each; 8 frames in 3 + 3 + 2


def test_frame_iterator_matches_the_model_frame_by_frame(tiny_model, style_file):
    frames = [shapes(i) for i in range(5)]
    outputs = list(stylize_frames(frames, style_file, model=tiny_model, device="cpu", batch_size=2))
    expected = reference(tiny_model, frames, style_file)
    assert len(outputs) == 5
    for out, ref in zip(outputs, expected, strict=True):
        assert out.shape == (3, 48, 64)
        got = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert mean_abs(got, ref) < 0.01


@pytest.mark.parametrize("tile", [None, 64], ids=["one-piece", "strips"])
def test_content_stats_hook_replaces_the_statistics(tiny_model, tile):
    from adain.engine.runner import EngineOptions
    from adain.functional import calc_mean_std

    content, style = smooth_image(1, 136, 160), smooth_image(2, 40, 40)
    stats = tiny_model.style_stats(style)
    given = (torch.full((1, 64, 1, 1), 0.3), torch.full((1, 64, 1, 1), 2.0))
    seen = []

    def hook(region, mean, std):
        seen.append((region, mean.shape))
        return given

    with torch.inference_mode():
        out = tiny_model(content, stats, content_stats=hook, engine=EngineOptions(tile=tile))
        # Independently: AdaIN (paper eq. 8) with the given content statistics, then decode.
        feats = tiny_model.encoder(content, ["relu4_1"])["relu4_1"]
        target = (feats - given[0]) / given[1] * stats.std + stats.mean
        expected = tiny_model.decoder(target)
        plain = tiny_model(content, stats, content_stats=lambda r, m, s: (m, s))
        own = calc_mean_std(feats)
    assert seen == [(0, (1, 64, 1, 1))]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(plain, tiny_model(content, stats), rtol=1e-5, atol=1e-5)
    assert own[0].shape == given[0].shape


def test_smoother_is_an_exponential_moving_average_reset_at_cuts():
    smoother = StatsSmoother(decay=0.75, cut_threshold=0.5)
    means = torch.tensor([1.0, 1.1, 1.2, 5.0, 5.1]).view(5, 1, 1, 1).expand(5, 4, 1, 1)
    stds = torch.ones(5, 4, 1, 1)
    out_mean, out_std = smoother(0, means[:3], stds[:3])
    smoother.advance(3)
    rest_mean, _ = smoother(0, means[3:], stds[3:])
    # Written out: a_0 = x_0, a_t = 0.75 a_(t-1) + 0.25 x_t; the jump 1.2 -> 5.0 restarts it.
    a1 = 0.75 * 1.0 + 0.25 * 1.1
    a2 = 0.75 * a1 + 0.25 * 1.2
    expected = [1.0, a1, a2, 5.0, 0.75 * 5.0 + 0.25 * 5.1]
    got = torch.cat([out_mean, rest_mean])[:, 0, 0, 0].tolist()
    assert got == pytest.approx(expected)
    assert torch.equal(out_std, stds[:3]) and smoother.cuts == [3]


def test_temporal_smoothing_reduces_flicker(style_file):
    frames = list(moving_shapes(10, 64, 112, seed=1))
    style = smooth_image(2, 64, 64)
    model = calibrated_model(8, frames[0], style)
    results = {}
    for temporal in (False, True):
        outputs = [
            (o.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for o in stylize_frames(frames, style, model=model, device="cpu", temporal=temporal)
        ]
        results[temporal] = (flicker(frames, outputs), flicker(frames, outputs, margin=16))
    assert results[True][0] < results[False][0]
    assert results[True][1] < 0.9 * results[False][1], results


def test_a_scene_cut_restarts_the_smoothing(tiny_model):
    frames = list(moving_shapes(8, 96, 160, seed=3, cut_at=5))
    smoother_record = stylize_frames(frames, smooth_image(2), model=tiny_model, temporal=True)
    outputs = list(smoother_record)
    assert len(outputs) == 8
    from adain.video import Stylizer

    stylizer = Stylizer(tiny_model, smooth_image(2), temporal=True, device="cpu")
    batch = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
    stylizer(batch[:4])
    stylizer(batch[4:])
    assert stylizer.smoother.cuts == [5]


# Image sequences and frame folders ---------------------------------------------------------------


def test_image_sequence_in_video_out_at_the_given_rate(tiny_model, tmp_path, style_file):
    folder = tmp_path / "seq"
    folder.mkdir()
    for index in range(6):
        to_pil(torch.from_numpy(shapes(index)).permute(2, 0, 1) / 255).save(
            folder / f"f{index + 1}.png"
        )
    for spec in (folder, str(folder / "f*.png"), str(folder / "f%d.png")):
        out = tmp_path / f"seq{len(str(spec))}.mp4"
        record = stylize_video(spec, style_file, out, model=tiny_model, device="cpu", fps=10)
        result = probe(out)
        assert record["frames"] == len(result["frames"]) == 6
        assert result["times"] == pytest.approx([i / 10 for i in range(6)])


def test_frame_folder_is_written_frame_by_frame_and_a_rerun_continues(tiny_model, clip, style_file):
    folder = clip.parent / "frames"
    first = stylize_video(clip, style_file, folder, model=tiny_model, device="cpu")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["adain-video.json"] + [f"frame_{i:06d}.png" for i in range(1, 9)]
    assert first["stylized_frames"] == 8
    kept = (folder / "frame_000003.png").read_bytes()
    (folder / "frame_000005.png").unlink()
    (folder / "frame_000006.png").unlink()
    leftover = folder / ".frame_000005.png.0123abcd.tmp"
    leftover.write_bytes(b"half")  # a killed run's: a minute old, no writer holding its lock
    os.utime(leftover, (time.time() - 60, time.time() - 60))
    again = stylize_video(clip, style_file, folder, model=tiny_model, device="cpu")
    assert (again["stylized_frames"], again["kept_frames"]) == (2, 6)
    assert (folder / "frame_000003.png").read_bytes() == kept
    assert len(list(folder.iterdir())) == 9
    with pytest.raises(ValueError, match="other inputs or options: pass --overwrite"):
        stylize_video(clip, style_file, folder, model=tiny_model, device="cpu", alpha=0.5)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        stylize_video(clip, style_file, folder, model=tiny_model, overwrite=True, alpha=0.5)


def test_mask_video_gives_each_style_its_region(tiny_model, tmp_path, clip, style_file):
    mask_clip = tmp_path / "mask.mkv"
    with av.open(str(mask_clip), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv444p"
        for index in range(8):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, : 8 * (index + 1)] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    still = tmp_path / "full.png"
    to_pil(torch.ones(3, 48, 64)).save(still)
    style2 = tmp_path / "style2.png"
    to_pil(smooth_image(7, 40, 40)).save(style2)
    out = tmp_path / "masked.mp4"
    record = stylize_video(
        clip, [style_file, style2], out, model=tiny_model, device="cpu",
        masks=[mask_clip, still], **lossless(),
    )  # fmt: skip
    assert record["frames"] == 8
    short = write_clip(tmp_path / "short.mp4", frames=3, audio=False)
    with pytest.raises(ValueError, match="short.mp4 has fewer frames than the input"):
        stylize_video(clip, [style_file, style2], tmp_path / "m2.mp4", model=tiny_model,
                      masks=[short, still], device="cpu")  # fmt: skip
    assert not (tmp_path / "m2.mp4").exists()


# The command line and bad input ------------------------------------------------------------------


def run_cli(*args: str):
    return CliRunner().invoke(app, ["video", *args])


def test_cli_end_to_end_with_json_record(tiny_model_dir, clip, style_file):
    out = clip.with_name("cli.mp4")
    result = run_cli(str(clip), "-s", str(style_file), "-o", str(out), "--model",
                     str(tiny_model_dir), "--device", "cpu", "--temporal", "--json", "-q",
                     "--batch-size", "3", "--crf", "30")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["frames"] == 8 and record["temporal"] is True and record["codec"] == "libx264"
    assert len(probe(out)["frames"]) == 8
    again = run_cli(str(clip), "-s", str(style_file), "-o", str(out), "--model",
                    str(tiny_model_dir))  # fmt: skip
    assert again.exit_code == 1 and "already exists: pass --overwrite" in again.output


def corrupt_clip(path: Path, broken: range | list[int] = (4,)) -> Path:
    """PNG frames in MOV with the image data of the ``broken`` frames (0-based) zeroed: the
    decoder fails on them."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("png", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "rgb24"
        for index in range(8):
            frame = av.VideoFrame.from_ndarray(shapes(index), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    for index in broken:
        pos, size = packets[index]
        data[pos + 60 : pos + size - 60] = bytes(size - 120)
    path.write_bytes(bytes(data))
    return path


def test_corrupt_frame_stops_with_its_number_or_is_skipped(tiny_model_dir, tmp_path, style_file):
    clip = corrupt_clip(tmp_path / "broken.mov")
    out = tmp_path / "out.mp4"
    args = [str(clip), "-s", str(style_file), "-o", str(out), "--model", str(tiny_model_dir)]
    result = run_cli(*args)
    assert result.exit_code == 1
    assert "broken.mov: corrupt video data at frame 5" in result.output
    assert "--skip-bad-frames" in result.output and len(result.output.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mov", "style.png",
                                                          "tiny-model"]  # fmt: skip
    result = run_cli(*args, "--skip-bad-frames", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["frames"], record["skipped_frames"]) == (7, 1)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "not a video file FFmpeg can read"),
        ("empty", "is empty (0 bytes)"),
        ("audio-only", "has no video stream (audio)"),
        ("unknown-codec", "its video codec is unknown to this FFmpeg"),
        ("huge", "px frames are over the limit of 1,000 pixels; raise --max-pixels"),
        ("missing", "no such file"),
        ("image", "is an image: give a video"),
    ],
)
def test_bad_input_is_one_line(kind, message, tmp_path, tiny_model_dir, style_file):
    path = tmp_path / {"audio-only": "a.m4a", "unknown-codec": "u.avi", "image": "i.png"}.get(
        kind, "v.mp4"
    )
    extra = []
    if kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "audio-only":
        with av.open(str(path), "w") as out:
            tone = out.add_stream("aac", rate=16000, layout="mono")
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            chunk.rate, chunk.pts = 16000, 0
            out.mux(tone.encode(chunk))
            out.mux(tone.encode(None))
    elif kind == "unknown-codec":
        write_clip(tmp_path / "f.avi", frames=2, audio=False, codec="ffv1")
        path.write_bytes((tmp_path / "f.avi").read_bytes().replace(b"FFV1", b"QQQQ"))
    elif kind == "huge":
        write_clip(path, frames=2, audio=False)
        extra = ["--max-pixels", "1000"]
    elif kind == "image":
        to_pil(smooth_image(1)).save(path)
    out = tmp_path / "out.mp4"
    result = run_cli(str(path), "-s", str(style_file), "-o", str(out), "--model",
                     str(tiny_model_dir), *extra)  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output and len(result.output.splitlines()) == 1, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "ext, message",
    [("mkv", "ends before its first frame"), ("mp4", "holds no streams"), ("mov", "no streams")],
)
def test_a_video_without_frames_is_an_error(tmp_path, ext, message):
    path = tmp_path / f"none.{ext}"
    with av.open(str(path), "w") as out:  # a header, no frame
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    with pytest.raises(ValueError, match=f"none.{ext} .*{message}.*empty or truncated video"):
        open_source(path)


def test_a_stream_that_decodes_to_nothing_is_an_error(tmp_path):
    clip = corrupt_clip(tmp_path / "all.mov", broken=range(8))
    with pytest.raises(ValueError, match="all.mov has no video frames"):
        open_source(clip, skip_bad_frames=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--codec", "nosuchcodec"], "--codec nosuchcodec: this FFmpeg has no video encoder"),
        (["--pix-fmt", "nosuchfmt"], "--pix-fmt nosuchfmt: libx264 cannot encode it; it takes"),
        (["--crf", "20", "--bitrate", "1M"], "give --crf (constant quality) or --bitrate"),
        (["--temporal", "--transfer", "efdm"], "--temporal smooths AdaIN's content mean"),
        (["-o", "out.xyz"], "unknown video extension .xyz"),
    ],
)
def test_bad_options_are_one_line(args, message, clip, tiny_model_dir, style_file, monkeypatch):
    monkeypatch.chdir(clip.parent)
    output = [] if "-o" in args else ["-o", "out.mp4"]
    result = run_cli(str(clip), "-s", str(style_file), "--model", str(tiny_model_dir),
                     *output, *args)  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output and len(result.output.splitlines()) == 1, result.output
    assert not any(p.name.startswith(("out", ".out")) for p in clip.parent.iterdir())


def test_output_never_replaces_the_input(clip, tiny_model_dir, style_file):
    before = clip.read_bytes()
    result = run_cli(str(clip), "-s", str(style_file), "-o", str(clip), "--model",
                     str(tiny_model_dir), "--overwrite")  # fmt: skip
    assert result.exit_code == 1 and "is one of the inputs" in result.output
    assert clip.read_bytes() == before


def test_encoder_listing_names_what_exists():
    from adain.video.codecs import choose_encoding

    with pytest.raises(ValueError, match=r"no video encoder of that name; it has: .*libx264"):
        choose_encoding("x.mp4", (64, 48), codec="h266-imaginary")


def test_max_size_and_alpha_reach_every_frame(tiny_model, clip, style_file):
    small = clip.with_name("small.mp4")
    record = stylize_video(clip, style_file, small, model=tiny_model, device="cpu", max_size=32)
    assert (record["width"], record["height"]) == probe(small)["size"] == (32, 24)
    out = clip.with_name("alpha.mp4")
    stylize_video(clip, style_file, out, model=tiny_model, device="cpu", alpha=0.25, **lossless())
    source = probe(clip)["frames"]
    batch = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in source])
    style = torch.from_numpy(np.array(Image.open(style_file))).permute(2, 0, 1)[None] / 255
    with torch.inference_mode():
        expected = tiny_model(batch, style.float(), 0.25).clamp(0, 1)
    expected = (expected.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    got = probe(out)["frames"]
    assert max(mean_abs(a, b) for a, b in zip(got, expected, strict=True)) < 1.5


@pytest.mark.slow
def test_video_benchmark_smoke_run(tmp_path):
    from benchmarks.video_bench import main

    out = tmp_path / "video.json"
    main(["--sizes", "64", "--frames", "4", "--width", "8", "--flicker-size", "64", "112",
          "--flicker-frames", "6", "--json", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    (row,) = result["speed"]
    assert row["frames"] == 4 and row["video_fps"] > 0 and row["still_fps"] > 0
    assert row["overhead"] == pytest.approx(row["model_fps"] / row["video_fps"] - 1)
    flick = result["flicker"]["margin32"]
    assert flick["ratio"] == pytest.approx(flick["temporal"] / flick["per_frame"])
