"""The whole-map walk: run a list of :class:`~adain.architecture.Step` over complete maps.

This is the differentiable path (training, the Gram method, anything that needs gradients) and
the plain path of GPUs; :mod:`adain.engine.stream` runs the same steps over strips of rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from adain.architecture import Step
from adain.engine.fused import upsample_conv3x3

# Weight and bias of each convolution, by its name in the steps.
Params = Mapping[str, tuple[Tensor, Tensor | None]]


def conv_params(module: nn.Module) -> Params:
    """``{name: (weight, bias)}`` of a module's direct ``Conv2d`` children."""
    return {
        name: (child.weight, child.bias)
        for name, child in module.named_children()
        if isinstance(child, nn.Conv2d)
    }


def run_steps(
    x: Tensor, steps: Sequence[Step], params: Params, keep: Collection[str]
) -> dict[str, Tensor]:
    """Run ``steps`` on ``x`` and return ``{name: output}`` for the step names in ``keep``.

    Activations are rebound as soon as they are used, so the input of a convolution is freed
    before its output is allocated, and ReLUs run in place unless autograd needs their input
    or a kept output is the same tensor.
    """
    feats: dict[str, Tensor] = {}
    for step in steps:
        if step.kind in ("conv", "upconv", "pointwise"):
            assert step.param is not None
            weight, bias = params[step.param]
            if step.kind == "pointwise":
                x = F.conv2d(x, weight, bias)
            elif step.kind == "upconv":
                # The exact low-resolution rewrite (adain.engine.fused): 2.25x fewer multiply-adds
                # and no 4x-size intermediate maps.
                x = upsample_conv3x3(x, weight, bias)
            else:
                # Conv2d(padding_mode="reflect") in two steps with x rebound in between: the
                # unpadded map is freed before the convolution allocates its output.
                x = F.pad(x, (1, 1, 1, 1), mode="reflect")
                x = F.conv2d(x, weight, bias)
        elif step.kind == "relu":
            shared = any(kept is x for kept in feats.values())
            x = F.relu(x, inplace=not shared and not x.requires_grad)
        elif step.kind == "maxpool":
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        else:
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        if step.name in keep:
            feats[step.name] = x
    return feats
