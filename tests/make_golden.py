"""Regenerate tests/data/golden.safetensors. Run on purpose only: `python tests/make_golden.py`.

The file holds a small random model (width 4, to relu4_1), seeded inputs and the model's output,
so test_golden.py catches any change in the numerics of the forward pass.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_model, smooth_image  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "golden.safetensors"
ALPHA = 0.8


def main() -> None:
    model = make_model(seed=123, width=4, depth="relu4_1")
    content, style = smooth_image(40, 32, 40), smooth_image(41, 24, 32)
    with torch.no_grad():
        output = model(content, style, alpha=ALPHA)
    tensors = {"content": content, "style": style, "output": output}
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(GOLDEN),
        metadata={"alpha": str(ALPHA), "torch": torch.__version__},
    )
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
