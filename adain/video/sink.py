"""Frames out: a video file (encoded, other streams copied) or a folder of frame images.

A video file is written under a temporary name and renamed into place when complete
(:func:`adain.outputs.write_atomically`), so a killed run leaves nothing half-written. Audio and
subtitle packets are copied from a second reading of the input, interleaved by time with the
video, never decoded. A frame folder is written one atomic file per frame; a second run with the
same inputs and options finds the frames already there and writes only the missing ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from adain.image import save_image
from adain.outputs import (
    check_folder,
    check_output,
    remove_if_abandoned,
    temporary_file_of,
    write_atomically,
)
from adain.video.codecs import Encoding
from adain.video.frame import Frame, require_av

# BT.709 (HD) colour tags and matrix for the encoded frames: players then show the colours the
# model produced (untagged, they guess BT.601 for SD and BT.709 for HD, a visible shift).
_BT709 = 1
_LIMITED_RANGE = 1
MANIFEST = "adain-video.json"
FRAME_NAME = "frame_{index:06d}.{ext}"


class VideoFileWriter:
    """Encodes frames into ``handle`` and copies the input's audio and subtitle streams.

    Args:
        handle: the (temporary) file to write, seekable.
        encoding: :func:`adain.video.codecs.choose_encoding`'s choice.
        time_base: the input video stream's time base: time stamps are kept as they are.
        rate: nominal frame rate for the encoder's rate control (``None``: 25).
        copy_from: the input file whose ``copy_streams`` are copied, or ``None``.
        copy_streams: the input's audio and subtitle streams.
        output_name: the user's output path, for messages.
    """

    def __init__(
        self,
        handle: BinaryIO,
        encoding: Encoding,
        time_base: Fraction,
        rate: Fraction | None,
        copy_from: Path | None,
        copy_streams: list[Any],
        output_name: str,
    ) -> None:
        av = require_av()
        self._av = av
        self.encoding = encoding
        self._out = av.open(handle, "w", format=encoding.container)
        try:
            self._video = self._add_video(time_base, rate)
            self._copies = self._add_copies(copy_streams, output_name)
            self._copy_in = av.open(str(copy_from)) if copy_from and self._copies else None
            self._packets = self._copy_packets()
        except BaseException:
            self._out.close()
            raise
        self._pending: Any = None
        self._last_pts: int | None = None
        self._time_base = time_base
        self.frames = 0

    def _add_video(self, time_base: Fraction, rate: Fraction | None) -> Any:
        encoding = self.encoding
        stream = self._out.add_stream(encoding.codec, rate=rate or Fraction(25))
        stream.width, stream.height = encoding.size
        stream.pix_fmt = encoding.pix_fmt
        stream.time_base = time_base
        context = stream.codec_context
        context.time_base = time_base
        context.options = dict(encoding.options)
        if encoding.bitrate is not None:
            context.bit_rate = encoding.bitrate
        if not self._av.VideoFormat(encoding.pix_fmt).is_rgb:
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _LIMITED_RANGE
        return stream

    def _add_copies(self, streams: list[Any], output_name: str) -> dict[int, Any]:
        supported = self._out.supported_codecs
        copies = {}
        for stream in streams:
            name = stream.codec_context.name if stream.codec_context else None
            if name is None or name not in supported:
                raise ValueError(
                    f"{output_name}: the input's {stream.type} stream ({name or 'unknown codec'}) "
                    f"cannot go into .{self.encoding.container} without re-encoding; write .mkv "
                    "(it takes any stream)"
                )
            copies[stream.index] = self._out.add_stream_from_template(stream)
        return copies

    def _copy_packets(self) -> Iterator[Any]:
        if self._copy_in is None:
            return iter(())
        streams = [self._copy_in.streams[i] for i in self._copies]
        return (p for p in self._copy_in.demux(*streams) if p.dts is not None or p.pts is not None)

    def _mux_copies_until(self, seconds: float | None) -> None:
        """Copy the other streams' packets up to ``seconds`` (all of them for ``None``)."""
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    return
            packet = self._pending
            stamp = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and float(stamp * packet.time_base) > seconds:
                return
            packet.stream = self._copies[packet.stream_index]
            self._out.mux(packet)
            self._pending = None

    def _mux_video(self, packets: list[Any]) -> None:
        for packet in packets:
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None:
                self._mux_copies_until(float(stamp * packet.time_base))
            self._out.mux(packet)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Encode one stylised frame ``(H, W, 3)`` uint8 with ``frame``'s time stamp."""
        right, bottom = self.encoding.pad
        if right or bottom:
            image = np.pad(image, ((0, bottom), (0, right), (0, 0)), mode="edge")
        video = self._av.VideoFrame.from_ndarray(image, format="rgb24")
        if not self._av.VideoFormat(self.encoding.pix_fmt).is_rgb:
            video = video.reformat(format=self.encoding.pix_fmt, dst_colorspace="ITU709")
        else:
            video = video.reformat(format=self.encoding.pix_fmt)
        pts = frame.pts if frame.pts is not None else self._pts_of(frame)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders need strictly increasing time stamps
        self._last_pts = pts
        video.pts = pts
        video.time_base = self._time_base
        if frame.duration:
            video.duration = frame.duration
        self._mux_video(self._video.encode(video))
        self.frames += 1

    def _pts_of(self, frame: Frame) -> int:
        rate = self._video.codec_context.framerate or Fraction(25)
        return round(frame.index / (rate * self._time_base))

    def close(self) -> None:
        """Flush the encoder, copy what remains of the other streams, finish the file."""
        try:
            self._mux_video(self._video.encode(None))
            self._mux_copies_until(None)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._copy_in is not None:
            self._copy_in.close()
            self._copy_in = None
        self._out.close()


def write_video_file(path: Path, run: Any, inputs: list[Path], overwrite: bool) -> Path:
    """Check ``path`` (never an input; ``--overwrite`` to replace), then call ``run(handle)``
    on a temporary file renamed to ``path`` only when ``run`` returns."""
    check_output(path, inputs, overwrite)
    return write_atomically(path, run)


class FrameFolder:
    """A folder of frame images ``frame_000001.png`` ... written one atomic file at a time.

    ``adain-video.json`` records what the frames were made from; a run with the same record
    continues a stopped one (``done`` says which frames exist), a different one needs
    ``--overwrite`` (which removes the frames, and only files this class writes).
    """

    def __init__(
        self,
        path: Path,
        ext: str,
        record: dict[str, Any],
        inputs: list[Path],
        overwrite: bool,
    ) -> None:
        self.path = path
        self.ext = ext.lower().lstrip(".")
        if f".{self.ext}" not in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
            raise ValueError(f"--ext {ext}: frames are written as png, jpg, webp, bmp or tiff")
        self._record = record
        manifest = path / MANIFEST
        names = self._own_names()
        check_folder(path, names, inputs, overwrite=True)  # inputs, foreign files, files in the way
        previous = _read_manifest(manifest)
        if previous is not None and previous != record:
            if not overwrite:
                raise ValueError(
                    f"{path} holds frames made from other inputs or options: pass --overwrite "
                    "or choose another -o"
                )
            self._clear(names)
        elif previous is None and path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise ValueError(f"{path} already exists: pass --overwrite or choose another -o")
            self._clear(names)
        elif overwrite:
            self._clear(names)
        self._remove_leftovers()
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        write_atomically(manifest, lambda handle: handle.write(text.encode()))

    def _own_names(self) -> set[str]:
        names = {MANIFEST}
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if _is_frame_name(entry.name, self.ext) or self._leftover(entry.name):
                    names.add(entry.name)
        return names

    def _leftover(self, name: str) -> bool:
        target = temporary_file_of(name)
        return target is not None and (target == MANIFEST or _is_frame_name(target, self.ext))

    def _clear(self, names: set[str]) -> None:
        for name in names:
            entry = self.path / name
            # Temporary files go only when abandoned (_remove_leftovers), never a live run's.
            if not self._leftover(name) and entry.is_file() and not entry.is_symlink():
                entry.unlink()

    def _remove_leftovers(self) -> None:
        # Temporary files a killed run left behind: ours by name, never a finished frame, never
        # one another run is still writing.
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if self._leftover(entry.name) and entry.is_file():
                    remove_if_abandoned(entry)

    def frame_path(self, index: int) -> Path:
        return self.path / FRAME_NAME.format(index=index + 1, ext=self.ext)

    def done(self, index: int) -> bool:
        return self.frame_path(index).is_file()

    def write(self, frame: Frame, image: np.ndarray) -> None:
        from PIL import Image

        save_image(Image.fromarray(image, mode="RGB"), self.frame_path(frame.index))


def _is_frame_name(name: str, ext: str) -> bool:
    stem, _, suffix = name.rpartition(".")
    return suffix == ext and stem.startswith("frame_") and stem[6:].isdigit()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
