"""``adain info`` and ``adain convert``: inspect a model, convert the original released weights
(or write a randomly initialised model, to try the tools offline).

No torch at module level, so ``adain --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from adain.cli.common import Debug, Revision, fail, flag, options, reported

app = typer.Typer(add_completion=False)


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL", help="Model folder or Hub repository id (default: $ADAIN_MODEL)."
        ),
    ] = None,
    *,
    revision: Revision = None,
    as_json: Annotated[bool, flag("--json", text="Print one JSON object.")] = False,
    debug: Debug = False,
) -> None:
    """Show a model's config, model card, parameter counts and source revision."""
    with reported(debug):
        from adain.weights.info import describe_model, format_description

        description = describe_model(model, revision=revision)
    typer.echo(json.dumps(description) if as_json else format_description(description))


# `adain convert --random`: a model to try every command offline, without the release files.
RANDOM_WARNING = "random weights: outputs are noise, for trying the tools offline"
RandomWeights = Annotated[
    bool,
    flag(
        "--random",
        text="Write a randomly initialised model instead, without files (its outputs are noise).",
    ),
]
BaseChannels = Annotated[
    int | None,
    typer.Option(help="With --random: VGG width, 8 is quick (default 64, VGG-19's)."),
]
Seed = Annotated[int | None, typer.Option(help="With --random: seed of the weights (default 0).")]

_RANDOM_CARD = """---
library_name: adain
tags:
- adain
- random-weights
---

# Random AdaIN weights: not a trained model

**{warning}.**

The AdaIN architecture (`config.json`) with He-initialised random weights (`model.safetensors`)
and no training, written by

    adain convert --random --base-channels {base_channels} --seed {seed} --encoder-depth {depth}

Every `adain` command takes this folder as `--model`, so the tools run without a download; their
images are not stylisations. For real results, convert the original release
(`adain convert vgg_normalised.pth decoder.pth -o DIR`) or use a published model.

## Licences

- Code: MIT (adain).
- Weights: random numbers drawn by `adain convert --random`; no third-party weights or data.
"""


def _convert_random(
    random_weights: bool,
    files: tuple[Path | None, Path | None],
    output: Path,
    encoder_depth: str,
    overwrite: bool,
    base_channels: int | None = None,
    seed: int = 0,
) -> None:
    """``convert --random``: write a random model folder, labelled as noise on stderr and in its
    model card."""
    if not random_weights:
        raise fail("--base-channels and --seed go with --random")
    if any(file is not None for file in files):
        raise fail("--random takes no VGG_FILE or DECODER_FILE: drop the files or --random")
    from adain.outputs import check_folder
    from adain.weights.folder import MODEL_FILES
    from adain.weights.hub import save_model_dir

    try:
        check_folder(output, MODEL_FILES, (), overwrite)  # before building the model
        from adain.model import AdaIN

        width = options(base_channels=base_channels)
        model = AdaIN.with_random_weights(encoder_depth=encoder_depth, seed=seed, **width)
        card = _RANDOM_CARD.format(
            warning=RANDOM_WARNING.capitalize(),
            base_channels=model.encoder.conv1_1.out_channels,
            seed=seed,
            depth=encoder_depth,
        )
        save_model_dir(model, output, overwrite=overwrite, model_card=card)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(f"warning: {RANDOM_WARNING}", err=True)
    typer.echo(str(output))


@app.command()
def convert(
    vgg_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="VGG_FILE", help="Released vgg_normalised.pth or .t7 (not with --random)."
        ),
    ] = None,
    decoder_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="DECODER_FILE", help="Released decoder.pth or .t7 (not with --random)."
        ),
    ] = None,
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write.")],
    encoder_depth: Annotated[
        str, typer.Option(help="relu5_1 (AdaIN + Gram path) or relu4_1 (AdaIN only).")
    ] = "relu5_1",
    random_weights: RandomWeights = False,
    base_channels: BaseChannels = None,
    seed: Seed = None,
    overwrite: Annotated[
        bool, flag("--overwrite", text="Replace an existing folder holding only model files.")
    ] = False,
) -> None:
    """Convert the original released weights to a save_pretrained folder (--random: noise)."""
    if random_weights or base_channels is not None or seed is not None:
        _convert_random(
            random_weights, (vgg_file, decoder_file), output, encoder_depth, overwrite,
            **options(base_channels=base_channels, seed=seed),
        )  # fmt: skip
        return
    if vgg_file is None or decoder_file is None:
        raise fail(
            "give VGG_FILE and DECODER_FILE (the original release's files), or --random for a "
            "model with random weights"
        )
    from adain.model import AdaIN
    from adain.outputs import check_folder
    from adain.weights.card import file_sources, original_card
    from adain.weights.folder import MODEL_FILES
    from adain.weights.hub import save_model_dir

    inputs = (vgg_file, decoder_file)
    try:
        check_folder(output, MODEL_FILES, inputs, overwrite)  # before the conversion
        model = AdaIN.from_original(vgg_file, decoder_file, encoder_depth=encoder_depth)
        card = original_card(file_sources(vgg_file, decoder_file))  # licences, provenance
        save_model_dir(model, output, overwrite=overwrite, model_card=card, inputs=inputs)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(str(output))
