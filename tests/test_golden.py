"""Golden output: the forward pass of a stored small model on stored inputs must not drift."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from adain.model import AdaIN

GOLDEN = Path(__file__).parent / "data" / "golden.safetensors"


def test_golden_output_cpu():
    tensors = load_file(str(GOLDEN))
    with safe_open(str(GOLDEN), framework="pt") as handle:
        alpha = float(handle.metadata()["alpha"])
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model = AdaIN(encoder_depth="relu4_1", base_channels=4)
    model.load_checked(state, source=GOLDEN)
    with torch.no_grad():
        output = model(tensors["content"], tensors["style"], alpha=alpha)
    expected = tensors["output"]
    diff = (output - expected).abs()
    assert expected.std() > 0.05, "the golden output should not be flat"
    # CPU fp32 tolerance: rtol 1e-4, atol 1e-5 (kernels may reorder sums across versions).
    torch.testing.assert_close(
        output,
        expected,
        rtol=1e-4,
        atol=1e-5,
        msg=f"golden drift: max {diff.max():.3g}, mean {diff.mean():.3g}",
    )
