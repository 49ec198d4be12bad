"""The README written beside exported graphs: inputs, outputs, ranges, an example, parity."""

from __future__ import annotations

from typing import Any

_TEMPLATE = """\
# AdaIN style transfer as ONNX

Arbitrary style transfer with Adaptive Instance Normalization (Huang & Belongie, ICCV 2017),
exported by [adain](https://arxiv.org/abs/1703.06868) (`adain export --format onnx`).
Opset {opset}; batch, height and width are dynamic. `config.json` says the same as this file,
for programs.

| file | precision | inputs | outputs |
|---|---|---|---|
| `{enc32}` | fp32 | `image` | `features`, `mean`, `std` |
| `{dec32}` | fp32 | `features`, `style_mean`, `style_std`, `alpha` | `image` |
| `{enc16}` | fp16 inside, fp32 in and out | as above | as above |
| `{dec16}` | fp16 inside, fp32 in and out | as above | as above |

- `image` in: float32 `(batch, 3, height, width)`, RGB in [0, 1], any size >= 16 px.
- `features`: float32 `(batch, {channels}, ceil(height/8), ceil(width/8))`, VGG-19 relu4_1.
- `mean`, `std`: float32 `(batch, {channels}, 1, 1)`, per channel, `std = sqrt(unbiased
  variance + {eps})`. For a style image these are all AdaIN needs of it: encode a style once,
  keep the two arrays, apply them to any number of images.
- `style_mean`, `style_std`: a style's `mean` and `std` (batch 1 or the content's batch). A
  mix of styles is the weighted average of their means and of their stds (weights summing
  to 1).
- `alpha`: float32 `(1,)`, the content-style trade-off, >= 0 (0 gives back the content, 1
  full style, above 1 over-stylises).
- `image` out: float32 `(batch, 3, 8h, 8w)`, RGB roughly in [0, 1], not clamped.

Sizes that are not multiples of 8: reflect-pad the content at the bottom and right to a
multiple of 8 before the encoder, then crop the decoder's output back to the content's size.
Styles are encoded as they are, unpadded.

```python
import numpy as np
import onnxruntime as ort
from PIL import Image

encoder = ort.InferenceSession("{enc32}")
decoder = ort.InferenceSession("{dec32}")


def as_input(path):  # RGB in [0, 1], (1, 3, H, W)
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return rgb.transpose(2, 0, 1)[None].copy()


content, style = as_input("content.jpg"), as_input("style.jpg")
_, style_mean, style_std = encoder.run(None, {{"image": style}})
height, width = content.shape[2:]
padded = np.pad(content, ((0, 0), (0, 0), (0, -height % 8), (0, -width % 8)), mode="reflect")
features, _, _ = encoder.run(None, {{"image": padded}})
(out,) = decoder.run(None, {{
    "features": features, "style_mean": style_mean, "style_std": style_std,
    "alpha": np.array([1.0], dtype=np.float32),
}})
out = out[0, :, :height, :width].clip(0, 1).transpose(1, 2, 0)
Image.fromarray((out * 255).round().astype(np.uint8)).save("out.png")
```

Checked at export against the torch model on seeded images ({sizes} px, a {style_size} px
style, alpha {alpha}): max abs difference {fp32:.2g} in fp32 (required: <= {tolerance:g}),
{fp16:.2g} with the fp16 graphs, on RGB in [0, 1].

Model: `{source}`, weights {fingerprint}. The decoder's upsampling steps are written
{upsampling}. Exported with {exporter}.
"""

_UPSAMPLING = {
    "plain": "as nearest-neighbour upsampling, reflect padding and a 3x3 convolution",
    "fused": "as four 2x2 convolutions at the low resolution, interleaved (the same result)",
}


def render_readme(config: dict[str, Any]) -> str:
    """The README of an export folder, from its ``config.json``."""
    parity = config["parity"]
    return _TEMPLATE.format(
        opset=config["opset"],
        enc32=config["files"]["fp32"]["encoder"],
        dec32=config["files"]["fp32"]["decoder"],
        enc16=config["files"]["fp16"]["encoder"],
        dec16=config["files"]["fp16"]["decoder"],
        channels=config["channels"],
        eps=config["model_config"]["eps"],
        sizes=", ".join(parity["fp32"]["per_size"]),
        style_size=parity["fp32"]["style_size"],
        alpha=parity["fp32"]["alpha"],
        fp32=parity["fp32"]["max_abs"],
        fp16=parity["fp16"]["max_abs"],
        tolerance=parity["fp32"]["tolerance"],
        source=config["model_source"] or "a model object",
        fingerprint=config["model_fingerprint"],
        upsampling=_UPSAMPLING[config["decoder_upsampling"]],
        exporter=config["exporter"],
    )
