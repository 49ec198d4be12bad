"""Video: ``adain video`` and its Python API, on PyAV (``pip install "adain[video]"``).

- :func:`stylize_video`: a video file or image sequence in, a video file or frame folder out.
- :func:`stylize_frames`: an iterator over your own frames, the style encoded once.
- :class:`StatsSmoother`: the temporal smoothing of the content statistics (``--temporal``).

Modules: ``source`` (frames in), ``sink`` (frames out), ``codecs`` (encoder choices),
``frames`` (the model per batch), ``temporal`` (smoothing), ``threads`` (overlap),
``pipeline`` (all of it). PyAV is imported only when a video is opened.
"""

from __future__ import annotations

from adain.video.frames import Stylizer as Stylizer
from adain.video.frames import stylize_frames as stylize_frames
from adain.video.pipeline import stylize_video as stylize_video
from adain.video.source import open_source as open_source
from adain.video.temporal import StatsSmoother as StatsSmoother
