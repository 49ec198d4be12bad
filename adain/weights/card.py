"""Model-card text shared by every writer: the licences, and the provenance of the original release.

The one source for the cards of ``AdaIN.save_pretrained`` (:data:`MODEL_CARD_TEMPLATE`),
of converted original releases (``adain convert`` and the loading fallbacks: :func:`original_card`)
and of published checkpoints (``hub/model_card.md``, filled by ``hub/push.py``). Plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adain.weights.folder import sha256_file

LUA_RELEASE = "https://github.com/xunhuang1995/AdaIN-style"
PYTORCH_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/tag/v0.0.0"

# Who trained the decoder, under what terms: the third line of :func:`licences`.
RELEASED_DECODER = (
    "trained and released by Huang & Belongie with AdaIN-style (MIT), converted to PyTorch by "
    "pytorch-AdaIN (MIT)."
)
UNRECORDED_DECODER = (
    "as stated by whoever trained it (see Provenance); the decoders released with AdaIN were "
    "trained by Huang & Belongie (AdaIN-style, MIT)."
)
ORIGINAL_TRAINING = (
    "Trained by Huang & Belongie with the Lua release (AdaIN-style): MS-COCO content, WikiArt "
    "style, 512 px shorter side, random 256 crops, batch 8, Adam 1e-4; `decoder.t7` converted to "
    "`decoder.pth` by pytorch-AdaIN. Not retrained here."
)
ORIGINAL_DEVIATIONS = (
    "- The decoder was trained with the Lua statistics (biased variance); it is run here with "
    "pytorch-AdaIN's, as in that port."
)


def licences(decoder: str) -> str:
    """A model card's Licences list (Markdown): code, encoder, ``decoder``, training data.

    Args:
        decoder: who trained the decoder and under what terms, e.g. :data:`RELEASED_DECODER`.
    """
    return f"""\
- Code: MIT (adain).
- Encoder: the VGG-19 weights of Simonyan & Zisserman (CC BY 4.0), normalised by Gatys et al.
  and released as `vgg_normalised` with AdaIN-style (MIT); converted to PyTorch by pytorch-AdaIN
  (MIT).
- Decoder: {decoder}
- Training data keep their own terms. The paper's data: MS-COCO images are Flickr images under
  their own terms (annotations CC BY 4.0); WikiArt images carry the rights of their artists and
  are shared for non-commercial research. Check them before any commercial use of the outputs or
  the weights."""


def saved_card_sections() -> str:
    """The Provenance and Licences sections of the card ``AdaIN.save_pretrained`` writes."""
    return f"""## Provenance

Saved with `AdaIN.save_pretrained` by the adain library. This card does not record where the
weights came from: `adain convert`, `python -m train` and `python -m hub push` write cards that do
(the source files with their sha256, or the training config).

## Licences

{licences(UNRECORDED_DECODER)}
"""


def file_sources(*files: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` of local source files, for :func:`original_card`."""
    return {Path(file).name: sha256_file(file) for file in files}


def original_provenance(sources: Mapping[str, str]) -> str:
    """Where converted original weights came from (Markdown), with each source's sha256.

    Args:
        sources: ``{file name or URL: sha256}`` of the encoder and decoder files converted.
    """
    rows = "\n".join(f"| `{source}` | `{sha}` |" for source, sha in sources.items())
    return (
        "Converted with `adain.weights.convert` (explicit index -> name key map, shape-checked) "
        "from files in the original release layout. The released files are published with "
        f"AdaIN-style (Lua `.t7`, {LUA_RELEASE}) and pytorch-AdaIN v0.0.0 (`.pth`, "
        f"{PYTORCH_RELEASE}):\n\n| source file | sha256 |\n|---|---|\n{rows}"
    )


def original_card(sources: Mapping[str, str]) -> str:
    """README.md of a converted original release; its metadata is what save_pretrained writes.

    Args:
        sources: ``{file name or URL: sha256}`` of the encoder and decoder files converted.
    """
    return f"""---
library_name: adain
license: mit
pipeline_tag: image-to-image
tags:
- adain
- arbitrary-style-transfer
- style-transfer
---

# AdaIN style transfer: the original release, converted

The encoder (`vgg_normalised`) and decoder released with AdaIN (Huang & Belongie, ICCV 2017,
https://arxiv.org/abs/1703.06868), converted from their original files by the adain library.
`config.json` holds the architecture, `model.safetensors` the weights.

```python
from adain import AdaIN

model = AdaIN.from_pretrained("path/to/this/folder")
```

## Provenance

{original_provenance(sources)}

## Training

{ORIGINAL_TRAINING}

## Known deviations from the references

{ORIGINAL_DEVIATIONS}

## Licences

{licences(RELEASED_DECODER)}
"""


# README.md written by save_pretrained (a Jinja template filled by huggingface_hub). Published
# checkpoints get the fuller card of hub/model_card.md (data, config, licences, deviations); the
# licences of every card come from adain.weights.card.
MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

# AdaIN style transfer

Arbitrary style transfer with Adaptive Instance Normalization (Huang & Belongie, ICCV 2017,
{{ paper_url }}), saved by the adain library: a frozen VGG-19 encoder, AdaIN on its relu4_1
features, and a trained decoder. `config.json` holds the
architecture, `model.safetensors` the weights.

```python
from adain import AdaIN, stylize

model = AdaIN.from_pretrained("path/or/org-name")  # this folder or repository
image = stylize("content.jpg", "style.jpg", model=model, alpha=0.8)
```

Command line: `adain stylize content.jpg --style style.jpg -o out.png --model path/or/org-name`.

""" + saved_card_sections()
