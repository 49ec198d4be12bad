"""Row streaming: the encoder and decoder over horizontal strips, with no recomputed rows.

Every layer between the image and relu4_1 (and back) only mixes neighbouring rows: a 3x3
convolution reads one row above and below, 2x2 max pooling pairs rows, the decoder's fused
upsample-and-convolve step (:mod:`adain.engine.fused`) reads one low-resolution row above and below.
So a network can run strip by strip if each layer keeps the last rows it has seen (two for a
convolution, at most one for pooling) and prepends them to the next strip: every output row is
computed once, from exactly the inputs of a whole-image run, and the strips' outputs stack up to
the whole-image output (float rounding aside). Memory is one strip's activations plus those
carried rows, whatever the image height; unlike overlapping tiles there is no halo to recompute
and nothing to blend.

Padding follows the whole-image layers: reflect by one row at the top of the first strip and the
bottom of the last for convolutions, replicate for the fused upsampling step, and ``ceil_mode``
pooling of a final odd row. On the CPU the widest convolutions run as Winograd F(2, 3)
(:mod:`adain.engine.winograd`), and each ReLU is applied while filling the next layer's padded
buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from adain.architecture import Step, StepKind
from adain.engine.fused import (
    interleave_phases,
    memory_layout,
    upsample_conv_weight,
    upsample_phases,
)
from adain.engine.precision import Precision, precision_context
from adain.engine.walk import Params
from adain.engine.winograd import F23Kernels, conv3x3_f23, winograd_pays

# A stage takes the next rows of its input (None: none this time) out of a one-item list, so
# that it holds the only reference and can free them before allocating its output, and whether
# they are the last; it returns the next rows of its output (None: none yet).
Stage = Callable[[list[Tensor | None], bool], Tensor | None]


def _rows(x: Tensor | None) -> int:
    return 0 if x is None else x.shape[2]


@dataclass(frozen=True)
class StreamConv:
    """A convolution's kernels in the forms its row stage runs: as given (direct 3x3), as the
    four phase kernels of the fused upsampling step, or as Winograd F(2, 3) column kernels.
    Built once per model and device (:class:`adain.engine.runner.Runner` caches them)."""

    weight: Tensor
    bias: Tensor | None
    f23: F23Kernels | None

    @classmethod
    def prepare(cls, weight: Tensor, bias: Tensor | None, kind: StepKind) -> StreamConv:
        if kind == "upconv":
            layout = memory_layout(weight) if weight.dim() == 4 else torch.contiguous_format
            return cls(upsample_conv_weight(weight).contiguous(memory_format=layout), bias, None)
        # Wide CPU convolutions run as Winograd F(2, 3) (adain.engine.winograd), on even widths.
        f23 = F23Kernels(weight, bias) if kind == "conv" and winograd_pays(weight) else None
        return cls(weight, bias, f23)


def prepare_convs(steps: Sequence[Step], params: Params) -> dict[str, StreamConv]:
    """The :class:`StreamConv` of every convolution ``steps`` use."""
    return {
        step.param: StreamConv.prepare(*params[step.param], step.kind)
        for step in steps
        if step.param is not None and step.kind in ("conv", "upconv")
    }


class _RowConv:
    """A 3x3 convolution (``"reflect"``) or the fused upsample-then-convolve step
    (``"upsample"``, replicate-padded low-resolution input), one strip at a time."""

    def __init__(self, conv: StreamConv, kind: str):
        self.kind = kind
        # Apply the previous layer's ReLU while copying into the padded buffer (see _fuse_relu).
        self.rectify = False
        self.mirror = 2 if kind == "reflect" else 1  # which row a padding row copies
        self.weight, self.bias, self.f23 = conv.weight, conv.bias, conv.f23
        self.carry: Tensor | None = None
        self.started = False

    def __call__(self, held: list[Tensor | None], last: bool) -> Tensor | None:
        pieces = [p for p in (self.carry, held.pop()) if _rows(p)]
        rows = sum(_rows(p) for p in pieces)
        top = 0 if self.started else 1
        bottom = 1 if last else 0
        # An output row needs three buffer rows; a reflected padding row needs two image rows.
        if top + rows + bottom < 3 or rows < (self.mirror if top or bottom else 1):
            if last:
                raise ValueError(f"{rows} row(s) are too few for a 3x3 convolution")
            self.carry = torch.cat(pieces, dim=2) if len(pieces) > 1 else (pieces or [None])[0]
            return None
        batch, channels, _, width = pieces[0].shape
        layout = memory_layout(pieces[0])
        # One padded buffer, filled piece by piece: the same single copy F.pad makes.
        buf = torch.empty(
            (batch, channels, top + rows + bottom, width + 2),
            dtype=pieces[0].dtype,
            device=pieces[0].device,
            memory_format=layout,
        )
        start = top
        for piece in pieces:
            target = buf[:, :, start : start + piece.shape[2], 1 : width + 1]
            if self.rectify:
                torch.clamp_min(piece, 0.0, out=target)
            else:
                target.copy_(piece)
            start += piece.shape[2]
        del pieces, piece  # the input strip is freed before the output is allocated
        m = self.mirror
        if top:
            buf[:, :, 0, 1 : width + 1] = buf[:, :, m, 1 : width + 1]
        if bottom:
            buf[:, :, -1, 1 : width + 1] = buf[:, :, -1 - m, 1 : width + 1]
        buf[:, :, :, 0] = buf[:, :, :, m]
        buf[:, :, :, -1] = buf[:, :, :, -1 - m]
        self.started = True
        # The next output row is centred on the buffer's last row: keep the last two rows.
        self.carry = None if last else buf[:, :, -2:, 1 : width + 1].clone()
        if self.kind == "upsample":
            phases = upsample_phases(buf, self.weight, self.bias)
            del buf  # freed before the 4x-size output is allocated
            return interleave_phases(phases, layout)
        if self.f23 is not None and width % 2 == 0:
            return conv3x3_f23(buf, self.f23)
        return F.conv2d(buf, self.weight, self.bias)


class _RowMaxPool:
    """2x2 max pooling (``ceil_mode``) one strip at a time, keeping an odd row for the next."""

    def __init__(self) -> None:
        self.carry: Tensor | None = None

    def __call__(self, held: list[Tensor | None], last: bool) -> Tensor | None:
        x = held.pop()
        outs = []
        if self.carry is not None:
            if _rows(x):
                assert x is not None
                pair = torch.cat([self.carry, x[:, :, :1]], dim=2)
                outs.append(F.max_pool2d(pair, 2, 2, ceil_mode=True))
                x = x[:, :, 1:]
            elif last:
                outs.append(F.max_pool2d(self.carry, 2, 2, ceil_mode=True))
            else:
                return None
            self.carry = None
        if _rows(x):
            assert x is not None
            if not last and x.shape[2] % 2:
                self.carry = x[:, :, -1:].clone()
                x = x[:, :, :-1]
            if _rows(x):
                outs.append(F.max_pool2d(x, 2, 2, ceil_mode=True))
        if not outs:
            return None
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def _relu(held: list[Tensor | None], last: bool) -> Tensor | None:
    x = held.pop()
    return None if x is None else F.relu(x, inplace=True)


def _fuse_relu(stages: list[Stage]) -> list[Stage]:
    """Fold each ReLU that feeds a convolution into the convolution's buffer copy: one pass over
    the map instead of two (the ReLUs took ~1.3 % of a 2048 px run on the 2-core CPU)."""
    fused: list[Stage] = []
    for index, stage in enumerate(stages):
        following = stages[index + 1] if index + 1 < len(stages) else None
        if stage is _relu and isinstance(following, _RowConv):
            following.rectify = True
            continue
        fused.append(stage)
    return fused


def stages(steps: Sequence[Step], params: Params, convs: Mapping[str, StreamConv]) -> list[Stage]:
    """Row stages for ``steps`` (as :func:`adain.engine.walk.run_steps` runs them whole), each
    ReLU that feeds a convolution folded into the convolution's buffer copy; ``convs`` from
    :func:`prepare_convs`."""
    built: list[Stage] = []
    for step in steps:
        if step.kind in ("conv", "upconv"):
            assert step.param is not None
            kind = "upsample" if step.kind == "upconv" else "reflect"
            built.append(_RowConv(convs[step.param], kind))
        elif step.kind == "pointwise":
            assert step.param is not None
            built.append(_pointwise(*params[step.param]))
        elif step.kind == "relu":
            built.append(_relu)
        elif step.kind == "maxpool":
            built.append(_RowMaxPool())
        else:
            raise ValueError(f"row streaming has no {step.kind} step (AdaIN's encoder max-pools)")
    return _fuse_relu(built)


def _pointwise(weight: Tensor, bias: Tensor | None) -> Stage:
    def run(held: list[Tensor | None], last: bool) -> Tensor | None:
        x = held.pop()
        return None if x is None else F.conv2d(x, weight, bias)

    return run


class RowStream:
    """Feeds strips of rows through ``stages`` on ``device`` in its layout and precision;
    :meth:`push` returns the output rows that are complete so far (fp32).

    Rows come out in order; after the strip pushed with ``last=True`` all of them have.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        device: torch.device,
        channels_last: bool = False,
        precision: Precision = "fp32",
    ):
        self.stages = list(stages)
        self.device = device
        self.channels_last = channels_last
        self.precision = precision
        self.done = False

    def push(self, rows: Tensor, last: bool = False) -> Tensor | None:
        if self.done:
            raise RuntimeError("this stream has had its last rows")
        self.done = last
        x: Tensor | None = rows.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), precision_context(self.device, self.precision):
            for stage in self.stages:
                held, x = [x], None
                x = stage(held, last)
        return None if x is None else x.float()
