"""Checkpoint -> ``save_pretrained`` folder with a model card; optionally pushed to the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adain.weights.card import licences
from train.checkpoints import load_checkpoint
from train.config import TrainConfig, override, to_toml

# The Decoder line of the card's Licences (adain.weights.card.licences).
TRAINED_DECODER = (
    "trained with `python -m train` (adain, MIT) on the data below; it carries their terms."
)

CARD = """---
library_name: adain
license: mit
pipeline_tag: image-to-image
tags: [style-transfer, adain, arbitrary-style-transfer]
---

# AdaIN decoder trained with `adain train`

Arbitrary style transfer with Adaptive Instance Normalization (Huang & Belongie, ICCV 2017,
https://arxiv.org/abs/1703.06868): a frozen VGG-19 encoder to relu4_1 and the decoder trained here.

```python
from adain import AdaIN
model = AdaIN.from_pretrained("{where}")
```

## Training

- Steps: {step} of {max_steps}, batch {batch_size} per process, {crop_size} px crops of images
  resized to a shorter side of {load_size} px (aspect ratio kept).
- Encoder (loss network): `{encoder}`.
- Final losses (last logged step): {losses}.
- adain version: {version}.

## Data

- Content: {content} ({content_images} images).
- Style: {style} ({style_images} images).
- Skipped as unreadable or smaller than {min_side} px: {skipped}.

Check the licences of these images before publishing (see Licences).

## Licences

{licences}

## Known deviations from the paper

Images keep their aspect ratio before cropping (pytorch-AdaIN squashes them to 512x512);
unreadable or tiny images are skipped. The exported encoder stops at relu4_1.

## Resolved training config

```toml
{config}```

## Citation

```bibtex
@inproceedings{{huang2017adain,
  title={{Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization}},
  author={{Huang, Xun and Belongie, Serge}},
  booktitle={{ICCV}},
  year={{2017}}
}}
```
"""


def model_card(state: dict[str, Any], where: str = "PATH_OR_REPO") -> str:
    """The README.md of an exported model: config, data description and final losses."""
    config = override(TrainConfig(), state["config"])
    data = state.get("data", {})
    losses = ", ".join(f"{k} {v:.4g}" for k, v in sorted(state.get("losses", {}).items()))
    return CARD.format(
        licences=licences(TRAINED_DECODER),
        where=where,
        step=state["step"],
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        crop_size=config.crop_size,
        load_size=config.load_size,
        encoder=config.encoder or "the default model's encoder",
        losses=losses or "none logged",
        version=state.get("adain_version", "unknown"),
        content=", ".join(f"`{c}`" for c in config.content),
        style=", ".join(f"`{s}`" for s in config.style),
        content_images=data.get("content_images", "?"),
        style_images=data.get("style_images", "?"),
        min_side=config.min_side,
        skipped=data.get("skipped", 0),
        config=to_toml(config),
    )


def export(
    checkpoint: str | Path,
    output: str | Path,
    push_to_hub: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``output`` (model.safetensors, config.json, README.md) from a training checkpoint.

    Args:
        checkpoint: a ``ckpt_*.pt`` or ``latest.pt`` written by :func:`train.loop.fit`.
        output: destination folder, replaced atomically (``overwrite``) and only when it holds
            nothing but model.safetensors, config.json and README.md: an unrelated folder, or
            one holding the checkpoint, is refused (:func:`adain.outputs.write_folder`).
        push_to_hub: ``org/name`` to upload the folder to (needs a login and the network).

    Returns:
        The folder, loadable with ``AdaIN.from_pretrained``.
    """
    from adain.model import AdaIN
    from adain.outputs import check_folder
    from adain.weights.folder import MODEL_FILES
    from adain.weights.hub import save_model_dir

    check_folder(output, MODEL_FILES, [checkpoint], overwrite, what="--export")
    state = load_checkpoint(checkpoint)
    if "encoder" not in state:
        raise ValueError(f"{checkpoint}: no encoder weights in this checkpoint; cannot export")
    base_channels = int(state["decoder"]["conv1_2.weight"].shape[0])
    model = AdaIN(encoder_depth="relu4_1", base_channels=base_channels)
    weights = {f"encoder.{k}": v for k, v in state["encoder"].items()}
    weights.update({f"decoder.{k}": v for k, v in state["decoder"].items()})
    model.load_checked(weights, source=str(checkpoint))
    card = model_card(state, where=push_to_hub or str(output))
    path = save_model_dir(
        model.eval(), output, overwrite=overwrite, model_card=card, inputs=[checkpoint]
    )
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, exist_ok=True)
        api.upload_folder(
            repo_id=push_to_hub,
            folder_path=str(path),
            commit_message=f"adain train export, step {state['step']}",
        )
    return path
