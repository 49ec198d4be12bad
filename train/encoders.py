"""The frozen loss network: which VGG-19 weights the decoder is trained against (``--encoder``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from adain.architecture import CONTENT_LAYER
from adain.encoder import VGG19Encoder

ORIGINAL_SUFFIXES = (".pth", ".pt", ".t7")
# torchvision's ImageNet normalisation (torchvision.models.VGG19_Weights.IMAGENET1K_V1.transforms).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision vgg19().features indices of the convolutions up to relu4_1.
TORCHVISION_CONVS = {
    "conv1_1": 0,
    "conv1_2": 2,
    "conv2_1": 5,
    "conv2_2": 7,
    "conv3_1": 10,
    "conv3_2": 12,
    "conv3_3": 14,
    "conv3_4": 16,
    "conv4_1": 19,
}


def encoder_from_state(state: dict[str, Tensor], source: str, base_channels: int) -> VGG19Encoder:
    """A relu4_1 encoder from ``{"conv1_1.weight": ...}`` keys (deeper layers ignored).

    Also how a resumed run gets its loss network back: from the checkpoint's ``encoder`` entry,
    so resuming needs neither the network nor the original ``--encoder`` file.
    """
    if "conv1_1.weight" not in state:
        raise ValueError(f"{source}: no VGG-19 encoder weights (no conv1_1.weight)")
    width = int(state["conv1_1.weight"].shape[0])
    if width != base_channels:
        raise ValueError(
            f"{source} has VGG width {width} but base_channels is {base_channels}: "
            f"set base_channels = {width}"
        )
    encoder = VGG19Encoder(depth=CONTENT_LAYER, base_channels=width)
    wanted = encoder.state_dict()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise ValueError(f"{source}: missing encoder weight {missing[0]!r}")
    encoder.load_state_dict({key: state[key] for key in wanted})
    return encoder


def _random(base_channels: int) -> VGG19Encoder:
    # He initialisation from a fixed generator: an untrained loss network that stays the same
    # for a given width whatever the run seed (the default init shrinks activations to ~0).
    encoder = VGG19Encoder(depth=CONTENT_LAYER, base_channels=base_channels)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, module in encoder.named_children():
            if name.startswith("conv"):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                module.bias.zero_()
        encoder.conv1_1.weight.mul_(1 / 64.0)  # the Caffe input spans +-128
    return encoder


def _torchvision(base_channels: int) -> VGG19Encoder:
    from torchvision.models import VGG19_Weights, vgg19

    if base_channels != 64:
        raise ValueError("the torchvision encoder is VGG-19 of width 64: set base_channels = 64")
    features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features.state_dict()
    state = {}
    for name, index in TORCHVISION_CONVS.items():
        state[f"{name}.weight"] = features[f"{index}.weight"]
        state[f"{name}.bias"] = features[f"{index}.bias"]
    # (x - mean) / std per RGB channel as the 1x1 input convolution, in place of Caffe's.
    std = torch.tensor(IMAGENET_STD)
    state["preprocess.weight"] = torch.diag(1.0 / std).view(3, 3, 1, 1)
    state["preprocess.bias"] = -torch.tensor(IMAGENET_MEAN) / std
    return encoder_from_state(state, "torchvision vgg19", base_channels)


def build_encoder(spec: str, base_channels: int = 64) -> VGG19Encoder:
    """The frozen relu4_1 encoder named by ``spec`` (see ``train.cli.ENCODER_HELP``).

    Note:
        The torchvision encoder keeps this package's reflection padding where torchvision pads
        with zeros; its weights were trained with zeros, one more reason to prefer the original.
    """
    if spec == "random":
        return _random(base_channels)
    if spec == "torchvision":
        return _torchvision(base_channels)
    path = Path(spec).expanduser() if spec else None
    if path is not None and path.suffix.lower() in ORIGINAL_SUFFIXES:
        from adain.weights.convert import VGG_INDEX_TO_NAME, read_original

        original = read_original(path)
        state = {}
        for index, name in VGG_INDEX_TO_NAME.items():
            for kind in ("weight", "bias"):
                if f"{index}.{kind}" in original:
                    state[f"{name}.{kind}"] = original[f"{index}.{kind}"].float()
        return encoder_from_state(state, str(path), base_channels)
    from adain.model import load_model
    from adain.weights.hub import resolve_model_id

    model = load_model(spec or None)
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    return encoder_from_state(state, resolve_model_id(spec or None), base_channels)
