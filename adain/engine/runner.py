"""How one model's relu4_1 encoder and decoder run: device, layout, precision, whole maps or
row streams, and the allocator setting the CPU path needs.

A :class:`Runner` is built per call from the model's convolutions. It works on its own copies of
the weights (laid out for the device), so the caller's module is never changed: not its layout,
not its dtype, not its device. Every path keeps the output within :data:`TOLERANCE` of eager fp32
(``tests/test_runner.py``).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from adain.architecture import (
    CONTENT_LAYER,
    DOWNSAMPLING,
    LAYER_NAMES,
    Step,
    decoder_steps,
    encoder_steps,
)
from adain.engine.heap import heap_reuse
from adain.engine.plan import MIN_TILE_CELLS, parse_memory
from adain.engine.precision import PRECISIONS, Precision, check_precision, precision_context
from adain.engine.stream import RowStream, StreamConv, prepare_convs, stages
from adain.engine.walk import Params, conv_params, run_steps

logger = logging.getLogger(__name__)

# The encoder as far as AdaIN needs it.
ENCODER_LAYERS = LAYER_NAMES[: LAYER_NAMES.index(CONTENT_LAYER) + 1]


@dataclass(frozen=True)
class EngineOptions:
    """How a model's calls run; none of these changes the result beyond float rounding (or the
    stated tolerance of reduced precision).

    Attributes:
        max_memory: bound on what one call adds to the process's peak memory (output,
            features, strips; the model and the caller's input are already there), bytes or
            ``"3G"``/``"512M"``; ``None``: :data:`adain.engine.plan.DEFAULT_MAX_MEMORY` on the
            CPU, the free memory of a GPU. Held within 10 % on the CPU
            (``python -m benchmarks memory``); a budget too small for the image is refused.
        tile: cap in px on the strip height (and column width); ``None`` picks it from
            ``max_memory``.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast (GPUs; :data:`TOLERANCE`).
        compile: ``torch.compile`` the whole-map walks (pays over many images of one size).
        device: where to run; ``None``: where the model's weights are. Elsewhere, the call
            runs on copies of the weights: the model itself is not moved.
    """

    max_memory: int | str | None = None
    tile: int | None = None
    precision: Precision = "fp32"
    compile: bool = False
    device: torch.device | str | None = None

    def __post_init__(self) -> None:
        # Checked here, so a bad option fails when it is given, whichever path a call takes.
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_memory(self.max_memory))
        if self.tile is not None and self.tile < MIN_TILE_CELLS * DOWNSAMPLING:
            raise ValueError(
                f"tile must be at least {MIN_TILE_CELLS * DOWNSAMPLING} px, got {self.tile}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )


def _laid_out(
    params: Params, steps: Sequence[Step], device: torch.device, channels_last: bool
) -> Params:
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for name in {step.param for step in steps if step.param is not None}:
        weight, bias = params[name]
        weight = weight.detach().to(device)
        out[name] = (
            weight.contiguous(memory_format=layout) if weight.dim() == 4 else weight,
            None if bias is None else bias.detach().to(device),
        )
    return out


# Weights laid out for a device, with their stream kernels, per encoder module: building them
# took ~0.2 s per call at base width 64 on the 2-core CPU. An entry is rebuilt when any weight
# of the model is replaced or changed in place (data pointer, version counter), and goes with
# the module.
_PREPARED: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()
_ENCODER_STEPS = encoder_steps(ENCODER_LAYERS, "max", keep={CONTENT_LAYER})
_DECODER_STEPS = decoder_steps()


def _version(tensor: Tensor) -> int | None:
    # Inference tensors (weights loaded inside torch.inference_mode) keep no version counter;
    # their data pointer still tells a replaced weight.
    return None if tensor.is_inference() else tensor._version


def _prepared(
    encoder: nn.Module, decoder: nn.Module, device: torch.device, channels_last: bool
) -> tuple[Params, Params, tuple[dict[str, StreamConv], dict[str, StreamConv]]]:
    parameters = [*encoder.parameters(), *decoder.parameters()]
    signature = (id(decoder), *((p.data_ptr(), _version(p), p.dtype) for p in parameters))
    entries = _PREPARED.setdefault(encoder, {})
    key = (str(device), channels_last)
    hit = entries.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    with torch.no_grad():
        enc = _laid_out(conv_params(encoder), _ENCODER_STEPS, device, channels_last)
        dec = _laid_out(conv_params(decoder), _DECODER_STEPS, device, channels_last)
        convs = (prepare_convs(_ENCODER_STEPS, enc), prepare_convs(_DECODER_STEPS, dec))
    entries[key] = (signature, (enc, dec, convs))
    return enc, dec, convs


class Runner:
    """The relu4_1 encoder and the decoder of one model on one device.

    Args:
        encoder: the encoder module (its ``Conv2d`` children named as in
            :data:`adain.architecture.LAYER_NAMES`, plus ``preprocess``); read, never changed.
        decoder: the decoder module (children named as in
            :data:`adain.architecture.DECODER_LAYERS`); read, never changed.
        eps: the variance epsilon of the model's feature statistics.
        device: where to run (default: where the encoder's weights are).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (statistics stay fp32).
        channels_last: NHWC layout; ``None`` picks it where it measured faster (CPU: ~0.8x the
            time at 512 px, REFERENCE.md section 7; CUDA with reduced precision: tensor cores).
        compile: wrap the whole-map walks in ``torch.compile``; if compiling fails (no C++
            compiler, unsupported backend) the runner warns once and stays eager.
        differentiable: run the module's own weights without inference mode or streams, so
            gradients flow (training, optimisation through the model).

    Note:
        torch.compile took ~0.7-0.8x eager time at 512 px on 2 CPU cores, but ~1 minute per new
        input shape to compile there, so it is off by default and pays only over many images
        of one size (batches, video frames).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        eps: float,
        device: torch.device | str | None = None,
        precision: Precision = "fp32",
        channels_last: bool | None = None,
        compile: bool = False,
        differentiable: bool = False,
    ):
        own = encoder.preprocess.weight.device
        self.device = torch.device(device) if device is not None else own
        self.precision = check_precision(precision, self.device)
        self.eps = eps
        self.differentiable = differentiable
        if channels_last is None:
            channels_last = not differentiable and (
                self.device.type == "cpu" or (self.device.type == "cuda" and precision != "fp32")
            )
        self.channels_last = channels_last
        self.encoder_steps, self.decoder_steps = _ENCODER_STEPS, _DECODER_STEPS
        if differentiable:
            self.encoder_params, self.decoder_params = conv_params(encoder), conv_params(decoder)
            self._convs: tuple[dict[str, StreamConv], dict[str, StreamConv]] | None = None
        else:
            prepared = _prepared(encoder, decoder, self.device, channels_last)
            self.encoder_params, self.decoder_params, self._convs = prepared
        self.base_channels = int(self.encoder_params["conv1_1"][0].shape[0])
        self._encode: Callable[[Tensor], Tensor] = self._walk_encoder
        self._decode: Callable[[Tensor], Tensor] = self._walk_decoder
        self.compiled = False
        if compile:
            self._encode = torch.compile(self._walk_encoder, dynamic=False)
            self._decode = torch.compile(self._walk_decoder, dynamic=False)
            self.compiled = True

    def _walk_encoder(self, image: Tensor) -> Tensor:
        keep = {CONTENT_LAYER}
        return run_steps(image, self.encoder_steps, self.encoder_params, keep)[CONTENT_LAYER]

    def _walk_decoder(self, feats: Tensor) -> Tensor:
        last = self.decoder_steps[-1].name
        return run_steps(feats, self.decoder_steps, self.decoder_params, {last})[last]

    def _layout(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _call(self, name: str, x: Tensor) -> Tensor:
        try:
            with precision_context(self.device, self.precision):
                out = getattr(self, name)(self._layout(x))
        except Exception as error:  # compile backends raise many error types
            if not self.compiled:
                raise
            logger.warning("torch.compile failed (%s); running eagerly", error)
            self.compiled = False
            self._encode, self._decode = self._walk_encoder, self._walk_decoder
            return self._call(name, x)
        return out.float()

    def encode(self, image: Tensor) -> Tensor:
        """relu4_1 features ``(B, C, ceil(H/8), ceil(W/8))`` in fp32 of a whole ``(B, 3, H, W)``
        image in [0, 1]."""
        return self._call("_encode", image)

    def decode(self, feats: Tensor) -> Tensor:
        """Image ``(B, 3, 8h, 8w)`` in fp32 (unclamped) from whole relu4_1 features."""
        return self._call("_decode", feats)

    def streams(self, pieces: int) -> bool:
        """Whether a run in ``pieces`` strips goes through row streams rather than whole-map
        walks. Strips must. A single piece on the CPU does too: the stream folds each ReLU into
        the next padding copy and runs wide convolutions as Winograd F(2, 3)
        (:mod:`adain.engine.winograd`). A compiled runner, or a GPU with its own convolution
        algorithms, walks whole maps."""
        if self.differentiable:
            assert pieces == 1, "a differentiable run is one piece"
            return False
        return pieces > 1 or (not self.compiled and self.device.type == "cpu")

    def encoder_stream(self) -> RowStream:
        """A stream from RGB rows in [0, 1] to relu4_1 feature rows."""
        assert self._convs is not None, "a differentiable runner walks whole maps"
        built = stages(self.encoder_steps, self.encoder_params, self._convs[0])
        return RowStream(built, self.device, self.channels_last, self.precision)

    def decoder_stream(self) -> RowStream:
        """A stream from relu4_1 feature rows to (unclamped) RGB rows."""
        assert self._convs is not None, "a differentiable runner walks whole maps"
        built = stages(self.decoder_steps, self.decoder_params, self._convs[1])
        return RowStream(built, self.device, self.channels_last, self.precision)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The scope of one call's work: on the CPU, freed activations stay in the process
        while it runs (:func:`adain.engine.heap.heap_reuse`)."""
        if self.device.type == "cpu" and not self.differentiable:
            with heap_reuse():
                yield
        else:
            yield
