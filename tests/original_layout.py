"""An independent re-statement of the released model layout, for conversion tests.

Written from pytorch-AdaIN's net.py and test.py (github.com/naoto0804/pytorch-AdaIN), not from
adain's code: index-keyed ``nn.Sequential`` encoder and decoder, and the test-time transfer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _pad() -> nn.Module:
    return nn.ReflectionPad2d((1, 1, 1, 1))


def _pool() -> nn.Module:
    return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)


def vgg_normalised(width: int = 64) -> nn.Sequential:
    """The 53-module encoder: a 1x1 input convolution, then VGG-19 with reflection padding."""
    w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    plan = [(3, w1), (w1, w1), "P", (w1, w2), (w2, w2), "P"]
    plan += [(w2, w3), (w3, w3), (w3, w3), (w3, w3), "P"]
    plan += [(w3, w4), (w4, w4), (w4, w4), (w4, w4), "P"]
    plan += [(w4, w4)] * 4
    for step in plan:
        if step == "P":
            layers.append(_pool())
        else:
            layers += [_pad(), nn.Conv2d(step[0], step[1], (3, 3)), nn.ReLU()]
    assert len(layers) == 53
    return nn.Sequential(*layers)


def decoder(width: int = 64) -> nn.Sequential:
    """The 29-module decoder from relu4_1 to RGB."""
    w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [_pad(), nn.Conv2d(c_in, c_out, (3, 3)), nn.ReLU()]

    def up() -> list[nn.Module]:
        return [nn.Upsample(scale_factor=2, mode="nearest")]

    layers = block(w4, w3) + up() + block(w3, w3) + block(w3, w3) + block(w3, w3)
    layers += block(w3, w2) + up() + block(w2, w2) + block(w2, w1) + up()
    layers += block(w1, w1) + [_pad(), nn.Conv2d(w1, 3, (3, 3))]
    assert len(layers) == 29
    return nn.Sequential(*layers)


def calc_mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """pytorch-AdaIN's statistics: unbiased variance + eps, per sample and channel."""
    n, c = feat.shape[:2]
    var = feat.view(n, c, -1).var(dim=2) + eps
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def style_transfer(
    vgg: nn.Sequential, dec: nn.Sequential, content: Tensor, style: Tensor, alpha: float = 1.0
) -> Tensor:
    """pytorch-AdaIN test.py: encode both to relu4_1 (vgg[:31]), AdaIN, blend, decode."""
    encoder = vgg[:31]
    content_f, style_f = encoder(content), encoder(style)
    c_mean, c_std = calc_mean_std(content_f)
    s_mean, s_std = calc_mean_std(style_f)
    feat = (content_f - c_mean) / c_std * s_std + s_mean
    feat = feat * alpha + content_f * (1 - alpha)
    return dec(feat)


def seeded_original(width: int, seed: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    """Random original-layout networks with He-initialised convolutions, so activations neither
    vanish nor explode and outputs vary across the image (PyTorch's default init decays them)."""
    torch.manual_seed(seed)
    vgg, dec = vgg_normalised(width), decoder(width)
    with torch.no_grad():
        for module in [*vgg, *dec]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.uniform_(module.bias, -0.1, 0.1)
        vgg[0].weight.zero_()
        for out_channel in range(3):  # RGB -> BGR x255, minus the Caffe mean
            vgg[0].weight[out_channel, 2 - out_channel] = 255.0
        vgg[0].bias.copy_(-torch.tensor([103.939, 116.779, 123.68]))
        vgg[2].weight.mul_(1 / 64.0)  # the Caffe input spans +-128: bring it back to O(1)
    return vgg.eval(), dec.eval()
