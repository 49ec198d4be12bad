"""Which container, encoder and pixel format an output gets, decided before any frame is read.

The defaults play everywhere: H.264 (libx264) in MP4 as yuv420p with BT.709 colour tags.
4:2:0 pixel formats store one chroma sample per 2x2 pixels, so H.264 and HEVC refuse odd frame
sizes in them (their bitstream can crop only in 2-pixel steps). An odd-sized video therefore
keeps its size by switching the default to yuv444p (4:4:4: every size allowed), unless the user
asks for a 4:2:0 format, which then pads the frame by one edge row/column to the next even size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Output extension -> FFmpeg muxer. Kept explicit: the file is written under a temporary name.
CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
# Preferred encoder per container, then the fallbacks tried in order.
DEFAULT_CODECS = {
    "mp4": ("libx264", "h264", "libopenh264", "mpeg4"),
    "mov": ("libx264", "h264", "libopenh264", "mpeg4"),
    "matroska": ("libx264", "h264", "libopenh264", "libvpx-vp9", "mpeg4"),
    "webm": ("libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"),
    "avi": ("libx264", "h264", "mpeg4", "mjpeg"),
}
DEFAULT_PIX_FMT = "yuv420p"
# Odd frame sizes without --pix-fmt: the same size in full-resolution chroma.
ODD_SIZE_PIX_FMT = "yuv444p"
# libx264/libx265's own default quality (visually near-lossless is 18).
DEFAULT_CRF = 23


@dataclass(frozen=True)
class Encoding:
    """How the video stream is encoded.

    Attributes:
        container: FFmpeg muxer name (``mp4``, ``matroska``, ...).
        codec: encoder name (``libx264``, ...).
        pix_fmt: pixel format the encoder gets.
        size: ``(width, height)`` of the frames given to the encoder (the output's size).
        pad: ``(right, bottom)`` pixels added to reach an even size for 4:2:0 (0 or 1 each).
        options: encoder options (``crf``, ...); ``bitrate`` in bits/s or ``None``.
        note: one line for the user about a choice made for them, or ``None``.
    """

    container: str
    codec: str
    pix_fmt: str
    size: tuple[int, int]
    pad: tuple[int, int]
    options: dict[str, str]
    bitrate: int | None
    note: str | None


def container_of(path: str | Path) -> str:
    """The FFmpeg muxer for an output file, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        known = ", ".join(CONTAINERS)
        raise ValueError(
            f"{path}: unknown video extension {suffix or '(none)'}; use one of {known}, or a "
            "folder name for frames"
        )
    return CONTAINERS[suffix]


def _encoders() -> list[str]:
    import av

    names = []
    for name in sorted(av.codecs_available):
        try:
            codec = av.codec.Codec(name, "w")
        except (ValueError, av.FFmpegError):  # a decoder only
            continue
        if codec.type == "video":
            names.append(name)
    return names


def _has_encoder(name: str) -> bool:
    import av

    try:
        return av.codec.Codec(name, "w").type == "video"
    except (ValueError, av.FFmpegError):
        return False


def _pick_codec(codec: str | None, container: str) -> str:
    if codec is not None:
        if not _has_encoder(codec):
            raise ValueError(
                f"--codec {codec}: this FFmpeg has no video encoder of that name; it has: "
                + ", ".join(_encoders())
            )
        return codec
    for name in DEFAULT_CODECS[container]:
        if _has_encoder(name):
            return name
    raise ValueError(
        f"this FFmpeg has no H.264 (or other {container}) encoder; pass --codec with one of: "
        + ", ".join(_encoders())
    )


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """Whether a pixel format halves chroma horizontally and vertically (4:2:0, 4:2:2)."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt, 4, 4)  # plane sizes need a frame size
    except (ValueError, av.FFmpegError):
        raise ValueError(f"--pix-fmt {pix_fmt}: unknown pixel format (e.g. yuv420p)") from None
    chroma = [c for c in fmt.components if not c.is_luma and not c.is_alpha]
    if not chroma or fmt.is_rgb:
        return False, False
    return chroma[0].width < fmt.components[0].width, chroma[0].height < fmt.components[0].height


def _supported_pix_fmts(codec: str) -> list[str]:
    import av

    formats = av.codec.Codec(codec, "w").video_formats or []
    return [f.name for f in formats]


def choose_encoding(
    path: str | Path,
    size: tuple[int, int],
    *,
    codec: str | None = None,
    pix_fmt: str | None = None,
    crf: int | None = None,
    bitrate: str | int | None = None,
) -> Encoding:
    """The encoding of an output file of frames of ``size`` ``(width, height)``.

    Raises:
        ValueError: one line naming the option to change (an unknown extension, encoder or
            pixel format, a pixel format the encoder lacks, ``--crf`` with ``--bitrate``).
    """
    container = container_of(path)
    name = _pick_codec(codec, container)
    supported = _supported_pix_fmts(name)
    width, height = size
    odd = width % 2 == 1 or height % 2 == 1
    note = None
    if pix_fmt is None:
        pix_fmt = DEFAULT_PIX_FMT if DEFAULT_PIX_FMT in supported or not supported else None
        if pix_fmt is None:
            pix_fmt = supported[0]
        if odd and any(_subsampled(pix_fmt)) and ODD_SIZE_PIX_FMT in supported:
            pix_fmt = ODD_SIZE_PIX_FMT
            note = (
                f"{width}x{height} is odd and yuv420p needs even sizes: writing {pix_fmt} at "
                f"the same size (--pix-fmt yuv420p pads to an even size instead)"
            )
    elif supported and pix_fmt not in supported:
        raise ValueError(
            f"--pix-fmt {pix_fmt}: {name} cannot encode it; it takes " + ", ".join(supported)
        )
    half_w, half_h = _subsampled(pix_fmt)
    pad = (width % 2 if half_w else 0, height % 2 if half_h else 0)
    if any(pad):
        note = (
            f"{width}x{height} is odd and {pix_fmt} needs even sizes: the frames are padded "
            f"with their edge to {width + pad[0]}x{height + pad[1]}"
        )
    return Encoding(
        container=container,
        codec=name,
        pix_fmt=pix_fmt,
        size=(width + pad[0], height + pad[1]),
        pad=pad,
        options=_quality_options(name, crf, bitrate),
        bitrate=_bits_per_second(bitrate),
        note=note,
    )


def _bits_per_second(bitrate: str | int | None) -> int | None:
    if bitrate is None or isinstance(bitrate, int):
        return bitrate
    text = bitrate.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"--bitrate {bitrate}: give bits per second, e.g. 4M or 800k")
    return int(value)


def _quality_options(codec: str, crf: int | None, bitrate: Any) -> dict[str, str]:
    if crf is not None and bitrate is not None:
        raise ValueError("give --crf (constant quality) or --bitrate, not both")
    if crf is not None and not 0 <= crf <= 63:
        raise ValueError(f"--crf {crf}: give 0 (lossless) to 51 (worst) for H.264")
    options: dict[str, str] = {}
    if codec in ("libx264", "libx265", "h264", "hevc"):
        if bitrate is None:
            options["crf"] = str(DEFAULT_CRF if crf is None else crf)
    elif codec.startswith(("libvpx", "libaom", "libsvtav1")):
        if bitrate is None:
            options["crf"] = str(32 if crf is None else crf)
            if codec.startswith("libvpx"):
                options["b"] = "0"  # VP8/9 constant quality needs a zero target bitrate
    elif crf is not None:
        raise ValueError(f"--crf applies to H.264, HEVC, VP9 and AV1, not {codec}: use --bitrate")
    return options
