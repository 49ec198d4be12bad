"""Golden output: the forward pass of a stored small model on stored inputs must not drift.

The same stored numbers hold through each way a user runs the model: called under ``no_grad``,
loaded from a ``save_pretrained`` folder and called with autograd on (the engine), and with
autograd recording (the module's own whole-map walk). tests/test_golden_entry_points.py holds the
entry points against an independent statement of the original release.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from adain.model import AdaIN

GOLDEN = Path(__file__).parent / "data" / "golden.safetensors"


def _golden() -> tuple[AdaIN, dict[str, torch.Tensor], float]:
    """The stored model (width 4, to relu4_1), its inputs and output, and alpha."""
    tensors = load_file(str(GOLDEN))
    with safe_open(str(GOLDEN), framework="pt") as handle:
        alpha = float(handle.metadata()["alpha"])
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model = AdaIN(encoder_depth="relu4_1", base_channels=4)
    model.load_checked(state, source=GOLDEN)
    return model.eval(), tensors, alpha


def _assert_golden(output: torch.Tensor, expected: torch.Tensor) -> None:
    diff = (output.detach() - expected).abs()
    assert expected.std() > 0.05, "the golden output should not be flat"
    # CPU fp32 tolerance: rtol 1e-4, atol 1e-5 (kernels may reorder sums across versions).
    torch.testing.assert_close(
        output.detach(),
        expected,
        rtol=1e-4,
        atol=1e-5,
        msg=f"golden drift: max {diff.max():.3g}, mean {diff.mean():.3g}",
    )


def test_golden_output_cpu():
    model, tensors, alpha = _golden()
    with torch.no_grad():
        output = model(tensors["content"], tensors["style"], alpha=alpha)
    _assert_golden(output, tensors["output"])


def test_golden_output_of_a_saved_and_loaded_model(tmp_path):
    """save_pretrained -> from_pretrained, called without no_grad: nothing requires gradients,
    so the call runs on the engine and records nothing."""
    model, tensors, alpha = _golden()
    model.save_pretrained(tmp_path / "golden-model")
    loaded = AdaIN.from_pretrained(tmp_path / "golden-model")
    output = loaded(tensors["content"], tensors["style"], alpha=alpha)
    assert not output.requires_grad
    _assert_golden(output, tensors["output"])


def test_golden_output_with_autograd_recording():
    """An input that requires grad: the differentiable whole-map path gives the same numbers."""
    model, tensors, alpha = _golden()
    content = tensors["content"].clone().requires_grad_(True)
    output = model(content, tensors["style"], alpha=alpha)
    assert output.requires_grad
    output.sum().backward()
    assert content.grad is not None and content.grad.abs().sum() > 0
    _assert_golden(output, tensors["output"])
