"""Original released checkpoints -> this package's AdaIN state dict and config.

The AdaIN releases (xunhuang1995/AdaIN-style in Lua, naoto0804/pytorch-AdaIN) store the encoder
``vgg_normalised`` (53 modules) and the decoder (29 modules) as ``nn.Sequential`` state dicts keyed
by module index. This module holds the only index -> name map of the project. It never builds a
model: :func:`load_original_state` returns the weights and the config, :func:`save_original` writes
them as a ``save_pretrained`` folder, and ``AdaIN.from_original`` builds the model from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adain.architecture import DECODER_LAYERS, DEPTHS, LAYER_NAMES, VGG19_BLOCKS
from adain.functional import EPS
from adain.weights.card import file_sources, original_card
from adain.weights.folder import save_state_dir

# vgg_normalised.pth: index 0 is the 1x1 preprocessing convolution; each 3x3 conv is preceded by
# its ReflectionPad2d; ReLUs and pools carry no weights. Indices 45, 48, 51 (conv5_2..conv5_4)
# are not used by any method here and are dropped.
VGG_INDEX_TO_NAME: dict[int, str] = {
    0: "preprocess",
    2: "conv1_1",
    5: "conv1_2",
    9: "conv2_1",
    12: "conv2_2",
    16: "conv3_1",
    19: "conv3_2",
    22: "conv3_3",
    25: "conv3_4",
    29: "conv4_1",
    32: "conv4_2",
    35: "conv4_3",
    38: "conv4_4",
    42: "conv5_1",
}
# decoder.pth: ReflectionPad2d before each conv, Upsample modules at 3, 16 and 23.
DECODER_INDEX_TO_NAME: dict[int, str] = {
    1: "conv4_1",
    5: "conv3_4",
    8: "conv3_3",
    11: "conv3_2",
    14: "conv3_1",
    18: "conv2_2",
    21: "conv2_1",
    25: "conv1_2",
    28: "conv1_1",
}
# Layers past relu4_1 in the encoder, needed only when encoder_depth is relu5_1.
_DEEP_LAYERS = ("conv4_2", "conv4_3", "conv4_4", "conv5_1")


def _expected_shapes(encoder_depth: str, base_channels: int) -> dict[str, torch.Size]:
    """Weight shapes of an :class:`~adain.model.AdaIN`, from the layer tables alone.

    Building a model (even on the meta device) would cost seconds per process for nothing.
    """
    shapes = {"encoder.preprocess.weight": (3, 3, 1, 1), "encoder.preprocess.bias": (3,)}
    kept = LAYER_NAMES[: LAYER_NAMES.index(encoder_depth) + 1]
    in_channels = 3
    for block, (convs, multiple) in enumerate(VGG19_BLOCKS, start=1):
        for n in range(1, convs + 1):
            if f"conv{block}_{n}" in kept:
                out_channels = base_channels * multiple
                shapes[f"encoder.conv{block}_{n}.weight"] = (out_channels, in_channels, 3, 3)
                shapes[f"encoder.conv{block}_{n}.bias"] = (out_channels,)
                in_channels = out_channels
    for name, in_multiple, out_multiple, _ in DECODER_LAYERS:
        out_channels = base_channels * out_multiple if out_multiple else 3
        shapes[f"decoder.{name}.weight"] = (out_channels, base_channels * in_multiple, 3, 3)
        shapes[f"decoder.{name}.bias"] = (out_channels,)
    return {key: torch.Size(shape) for key, shape in shapes.items()}


def _map_keys(
    state: Mapping[str, Tensor], index_to_name: Mapping[int, str], prefix: str, what: str
) -> dict[str, Tensor]:
    out = {}
    for index, name in index_to_name.items():
        for kind in ("weight", "bias"):
            key = f"{index}.{kind}"
            if key not in state:
                raise ValueError(
                    f"{what}: missing key {key!r} ({name}); expected the released "
                    f"index-keyed layout, found keys {_preview(state)}"
                )
            out[f"{prefix}.{name}.{kind}"] = state[key]
    return out


def _preview(state: Mapping[str, Tensor]) -> str:
    keys = list(state)
    return ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")


def convert_state_dict(
    vgg: Mapping[str, Tensor],
    decoder: Mapping[str, Tensor],
    encoder_depth: str = "relu5_1",
    source: tuple[str, str] = ("vgg", "decoder"),
) -> dict[str, Tensor]:
    """Map released index-keyed state dicts to :class:`~adain.model.AdaIN` keys.

    Args:
        vgg: ``vgg_normalised`` state dict (``"0.weight"`` ... ``"51.bias"``); the full 53-module
            file or one truncated after relu4_1 (then ``encoder_depth`` must be ``"relu4_1"``).
        decoder: decoder state dict (``"1.weight"`` ... ``"28.bias"``).
        encoder_depth: ``"relu4_1"`` or ``"relu5_1"``.
        source: names of the two inputs for error messages (usually their file paths).

    Returns:
        ``{"encoder.conv1_1.weight": ..., "decoder.conv4_1.weight": ...}``.

    Raises:
        ValueError: naming the file and the key, for a missing key or a wrong shape.
    """
    if encoder_depth not in DEPTHS:
        raise ValueError(f"encoder_depth must be one of {DEPTHS}, got {encoder_depth!r}")
    vgg_map = dict(VGG_INDEX_TO_NAME)
    if encoder_depth == "relu4_1":
        vgg_map = {i: n for i, n in vgg_map.items() if n not in _DEEP_LAYERS}
    if "2.weight" not in vgg:
        raise ValueError(
            f"{source[0]}: not a vgg_normalised state dict (no key '2.weight'); found keys "
            f"{_preview(vgg)}"
        )
    base_channels = int(vgg["2.weight"].shape[0])
    state = _map_keys(vgg, vgg_map, "encoder", source[0])
    state.update(_map_keys(decoder, DECODER_INDEX_TO_NAME, "decoder", source[1]))
    expected = _expected_shapes(encoder_depth, base_channels)
    assert set(state) == set(expected), "the key maps and the model disagree"
    for key, value in state.items():
        if value.shape != expected[key]:
            what = source[0] if key.startswith("encoder.") else source[1]
            raise ValueError(
                f"{what}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key])}"
            )
    return {key: value.detach().to(torch.float32).contiguous() for key, value in state.items()}


def read_original(path: str | Path) -> dict[str, Tensor]:
    """Read a released checkpoint as an index-keyed state dict, without unpickling code.

    ``.pth``/``.pt`` files go through ``torch.load(weights_only=True)``; Lua ``.t7`` files through
    the ``torchfile`` package (``pip install 'adain[lua]'``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    if path.suffix.lower() == ".t7":
        return _read_t7(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, pickle with code objects, not a torch file at all
        raise ValueError(
            f"{path} is not a readable PyTorch state dict ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def _read_t7(path: Path) -> dict[str, Tensor]:
    try:
        import torchfile
    except ImportError as error:
        raise ValueError(
            f"reading {path} needs the torchfile package: pip install 'adain[lua]'"
        ) from error
    try:
        sequential = torchfile.load(str(path))
        modules = sequential.modules
    except Exception as error:
        raise ValueError(f"{path} is not a readable Lua Torch .t7 file ({error})") from error
    if not isinstance(modules, list):
        raise ValueError(f"{path} does not hold an nn.Sequential")
    state: dict[str, Tensor] = {}
    for index, module in enumerate(modules):
        weight = getattr(module, "weight", None)
        if weight is None:
            continue
        weight = torch.from_numpy(weight.copy()).float()
        n_out, n_in = module.nOutputPlane, module.nInputPlane
        if n_out is not None and n_in is not None:
            # Old Torch7 stores convolution weights flattened to (nOut, nIn*kH*kW).
            weight = weight.reshape(int(n_out), int(n_in), int(module.kH), int(module.kW))
        state[f"{index}.weight"] = weight
        state[f"{index}.bias"] = torch.from_numpy(module.bias.copy()).float()
    return state


def load_original_state(
    vgg: str | Path, decoder: str | Path, encoder_depth: str = "relu5_1"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and convert the released encoder and decoder files (.pth or .t7).

    Args:
        vgg: the released ``vgg_normalised`` file.
        decoder: the released decoder file.
        encoder_depth: ``"relu4_1"`` or ``"relu5_1"``, the encoder layers to keep.

    Returns:
        The :class:`~adain.model.AdaIN` state dict, and the model's config kwargs
        ``{"encoder_depth": ..., "base_channels": ...}`` (the width read from the file).

    Raises:
        ValueError: an unreadable file, a missing key or a wrong shape, naming the file.
    """
    state = convert_state_dict(
        read_original(vgg),
        read_original(decoder),
        encoder_depth=encoder_depth,
        source=(str(vgg), str(decoder)),
    )
    base_channels = int(state["encoder.conv1_1.weight"].shape[0])
    return state, {"encoder_depth": encoder_depth, "base_channels": base_channels}


def save_original(
    vgg: str | Path,
    decoder: str | Path,
    path: str | Path,
    encoder_depth: str = "relu5_1",
    overwrite: bool = False,
    sources: Mapping[str, str] | None = None,
) -> Path:
    """Convert the released files into a ``save_pretrained`` folder, without building a model.

    The folder holds what ``AdaIN.from_original(vgg, decoder, encoder_depth)`` followed by
    ``save_pretrained`` gives: the same weights and ``config.json`` (with the default ``eps``),
    and the model card of a converted release (:func:`~adain.weights.card.original_card`, with
    licences and provenance). It is written atomically.

    Args:
        sources: ``{file name or URL: sha256}`` for the card's provenance; default the two
            files' names and sha256.
    """
    state, config = load_original_state(vgg, decoder, encoder_depth=encoder_depth)
    config = config | {"eps": EPS}  # AdaIN's default, which config.json always records
    card = original_card(sources if sources is not None else file_sources(vgg, decoder))
    return save_state_dir(state, config, path, model_card=card, overwrite=overwrite)
