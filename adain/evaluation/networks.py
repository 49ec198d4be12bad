"""The two learned networks of the perceptual metrics, built from state dicts in their original
key layouts: LPIPS (Zhang et al., CVPR 2018) and the Inception-v3 of ArtFID (Wright & Ommer, GCPR
2022).

LPIPS is a backbone (torchvision's AlexNet or VGG-16 ``features``) whose activations at five
ReLUs are unit-normalised over channels, squared differences weighted per channel by learned 1x1
"linear" layers, averaged over positions and summed over layers. The widths are read from the
weight shapes, so small stand-in networks load through the same code. ArtFID's network is
torchvision's ``Inception3`` whose 2048 pooled features feed the Fréchet distance.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# lpips' ScalingLayer: inputs in [-1, 1] shifted and scaled per RGB channel (lpips v0.1).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# torchvision ``features`` layouts: each entry is ("conv", stride, padding), ("relu",) or
# ("pool", kernel, stride), at the index torchvision gives it; TAPS are the ReLU indices whose
# outputs LPIPS compares (lpips.pretrained_networks slices).
_ALEX = [("conv", 4, 2), ("relu",), ("pool", 3, 2), ("conv", 1, 2), ("relu",), ("pool", 3, 2)]
_ALEX += [("conv", 1, 1), ("relu",), ("conv", 1, 1), ("relu",), ("conv", 1, 1), ("relu",)]


def _vgg16_layers() -> list[tuple]:
    layers: list[tuple] = []
    for block, convs in enumerate((2, 2, 3, 3, 3)):
        if block:
            layers.append(("pool", 2, 2))
        layers += [("conv", 1, 1), ("relu",)] * convs
    return layers


BACKBONES: dict[str, tuple[list[tuple], tuple[int, ...]]] = {
    "alex": (_ALEX, (1, 4, 7, 9, 11)),
    "vgg": (_vgg16_layers(), (3, 8, 15, 22, 29)),
}
# ImageNet statistics: the normalisation torchvision's Inception3 weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_SIZE = 299  # px: Inception-v3's input size (pytorch-fid resizes to it too)
INCEPTION_FEATURES = 2048


def _floats(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.float().contiguous() for k, v in state.items()}


class LPIPS(nn.Module):
    """LPIPS distance between images in [0, 1], from a backbone and linear-layer state dicts.

    Args:
        backbone: torchvision ``alexnet()`` or ``vgg16()`` weights, ``features.N.weight`` keys
            (``classifier`` keys are ignored), any widths.
        linear: the lpips package's linear layers, ``lin{k}.model.1.weight`` of shape
            ``(1, C_k, 1, 1)`` (``weights/v0.1/alex.pth``).
        net: ``"alex"`` (ArtFID's choice, lpips' default) or ``"vgg"``.
        source: names the files in errors.
    """

    def __init__(
        self,
        backbone: Mapping[str, Tensor],
        linear: Mapping[str, Tensor],
        net: str = "alex",
        source: str = "LPIPS weights",
    ):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"LPIPS net must be one of {tuple(BACKBONES)}, got {net!r}")
        layers, self.taps = BACKBONES[net]
        modules: list[nn.Module] = []
        state: dict[str, Tensor] = {}
        for index, spec in enumerate(layers):
            if spec[0] == "conv":
                key = f"features.{index}"
                if f"{key}.weight" not in backbone or f"{key}.bias" not in backbone:
                    raise ValueError(
                        f"{source}: missing {key}.weight/bias: not torchvision {net} weights"
                    )
                weight = backbone[f"{key}.weight"]
                out_channels, in_channels, kernel = weight.shape[:3]
                modules.append(nn.Conv2d(in_channels, out_channels, kernel, spec[1], spec[2]))
                state[f"{index}.weight"], state[f"{index}.bias"] = weight, backbone[f"{key}.bias"]
            elif spec[0] == "relu":
                modules.append(nn.ReLU())
            else:
                modules.append(nn.MaxPool2d(spec[1], spec[2]))
        self.features = nn.Sequential(*modules[: self.taps[-1] + 1])
        try:
            self.features.load_state_dict(_floats(state))
        except RuntimeError as error:  # a size mismatch between consecutive layers
            raise ValueError(f"{source}: inconsistent backbone shapes ({error})") from None
        weights = []
        for k, tap in enumerate(self.taps):
            key = f"lin{k}.model.1.weight"
            channels = self.features[tap - 1].out_channels  # type: ignore[union-attr]
            if key not in linear or tuple(linear[key].shape) != (1, channels, 1, 1):
                found = tuple(linear[key].shape) if key in linear else "missing"
                raise ValueError(
                    f"{source}: {key} must be (1, {channels}, 1, 1) for this backbone, got {found}"
                )
            weights.append(linear[key].float().reshape(1, channels, 1, 1))
        self.linear = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def _taps(self, image: Tensor) -> list[Tensor]:
        x = ((2 * image - 1) - self.shift) / self.scale  # lpips takes [-1, 1] inputs
        taps = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.taps:
                # lpips.normalize_tensor: unit length over channels, eps 1e-10.
                taps.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    @torch.no_grad()
    def forward(self, image: Tensor, reference: Tensor) -> Tensor:
        """LPIPS ``(B,)`` of ``(B, 3, H, W)`` images in [0, 1] against same-size references."""
        if image.shape != reference.shape:
            raise ValueError(
                f"LPIPS compares images of one size, got {tuple(image.shape)} and "
                f"{tuple(reference.shape)}"
            )
        distance = image.new_zeros(image.shape[0])
        for weight, a, b in zip(self.linear, self._taps(image), self._taps(reference), strict=True):
            distance = distance + ((a - b).square() * weight).sum(dim=1).mean(dim=(1, 2))
        return distance


class InceptionFeatures(nn.Module):
    """The 2048 pooled features of a torchvision ``Inception3`` (ArtFID's art-trained network).

    Args:
        state: torchvision ``Inception3`` keys (``Conv2d_1a_3x3.conv.weight`` ...); ``fc.*`` and
            ``AuxLogits.*`` are ignored, so any number of classes loads.
        source: names the file in errors.

    Note:
        Images are resized to 299x299 (bilinear, as pytorch-fid) and normalised with the
        ImageNet statistics of torchvision's Inception weights. art-fid feeds its network
        images at their own size; FIDs from the two are close but not identical.
    """

    def __init__(self, state: Mapping[str, Tensor], source: str = "Inception weights"):
        super().__init__()
        from torchvision.models import Inception3

        with torch.device("meta"):  # no random init of 24M weights that are replaced next
            net = Inception3(aux_logits=False, transform_input=False, init_weights=False)
        net.fc = nn.Identity()
        wanted = net.state_dict()
        kept = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
        for key in wanted:  # batch-norm step counters: not used in eval mode, often not saved
            if key.endswith("num_batches_tracked") and key not in kept:
                kept[key] = torch.zeros((), dtype=torch.long)
        missing = [k for k in wanted if k not in kept]
        unexpected = [k for k in kept if k not in wanted]
        if missing or unexpected:
            what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
            raise ValueError(f"{source}: not torchvision Inception3 weights ({what})")
        for key, value in kept.items():
            if value.shape != wanted[key].shape:
                raise ValueError(
                    f"{source}: {key} has shape {tuple(value.shape)}, Inception3 expects "
                    f"{tuple(wanted[key].shape)}"
                )
        loaded = {k: v if v.dtype == torch.long else v.float() for k, v in kept.items()}
        net.load_state_dict({k: v.contiguous().clone() for k, v in loaded.items()}, assign=True)
        self.net = net.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 2048)`` float64 features."""
        x = F.interpolate(
            images.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
            align_corners=False,
        )  # fmt: skip
        return self.net((x - self.mean) / self.std).double()
