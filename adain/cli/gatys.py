"""``adain gatys`` and ``adain compare``: the Gram method, and its comparison with AdaIN.

Registered by ``adain/cli/__init__.py``. No torch at module level, so ``adain --help`` stays
instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from adain.cli.common import (
    Debug,
    Device,
    Model,
    Overwrite,
    Quiet,
    Revision,
    flag,
    iterations,
    reported,
)

app = typer.Typer(add_completion=False)

ContentArgument = Annotated[Path, typer.Argument(metavar="CONTENT", help="Content image.")]
StyleArgument = Annotated[Path, typer.Argument(metavar="STYLE", help="Style image.")]

# Defaults in the help texts are GatysConfig's presets (tests/test_gatys.py checks them).
PresetOption = Annotated[
    str, typer.Option(help="gatys2016 (paper: avg pooling, noise start) or neural_style.")
]
StepsOption = Annotated[
    int | None, typer.Option(help="Iterations (default 500; neural_style 1000).")
]
InitOption = Annotated[
    str | None,
    typer.Option(help="Start image: content, noise or adain (the AdaIN output) (default noise)."),
]
SizeOption = Annotated[
    int | None,
    typer.Option(
        help="Longer side in px: larger images are shrunk to exactly this, smaller ones kept"
        " unless --upscale (default 512; 0 keeps every size)."
    ),
]
UpscaleOption = Annotated[
    bool, flag("--upscale", text="Also enlarge images smaller than --image-size.")
]


def _config(preset: str, **fields: Any) -> Any:
    """The preset with every option the user gave (``None`` keeps the preset's value)."""
    from adain.gatys import PRESETS

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    overrides = {k: v for k, v in fields.items() if v is not None}
    if overrides.get("image_size") == 0:
        overrides["image_size"] = None  # 0 keeps the input size
    return PRESETS[preset](**overrides)


def _load(path: Path, image_size: int | None, upscale: bool) -> Any:
    """An image file as a (1, 3, H, W) tensor, its longer side exactly image_size px when it was
    larger (or smaller, with upscale)."""
    from adain.image import load_image, resize_longer, to_tensor

    return to_tensor(resize_longer(load_image(path), image_size, upscale=upscale))


def _check_outputs(
    content: Path, style: Path, output: Path, json_path: Path | None, overwrite: bool
) -> None:
    """Refuse, before the (slow) run, outputs that replace an input or, unasked, any file."""
    from adain.image import save_format
    from adain.outputs import check_output

    save_format(output)
    check_output(output, [content, style], overwrite)
    if json_path is not None:
        if json_path.expanduser().resolve() == output.expanduser().resolve():
            raise ValueError(f"--json and -o both name {output}: give the numbers another file")
        check_output(json_path, [content, style], overwrite, what="--json")


def _model_and_images(
    model: str | None,
    revision: str | None,
    device: str,
    content: Path,
    style: Path,
    image_size: int | None,
    upscale: bool,
) -> tuple[Any, Any, Any]:
    from adain.api import get_device
    from adain.model import load_model

    net = load_model(model, revision=revision).to(get_device(device)).eval()
    return net, _load(content, image_size, upscale), _load(style, image_size, upscale)


@app.command()
def gatys(
    content: ContentArgument,
    style: StyleArgument,
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image file.")],
    preset: PresetOption = "gatys2016",
    steps: StepsOption = None,
    init: InitOption = None,
    optimizer: Annotated[str | None, typer.Option(help="lbfgs or adam (default lbfgs).")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Step size (default 1 for lbfgs, 10/255 for adam).")
    ] = None,
    content_weight: Annotated[
        float | None, typer.Option(help="alpha in L = a Lc + b Ls (default 1; neural_style 5).")
    ] = None,
    style_weight: Annotated[
        float | None,
        typer.Option(help="beta in L = a Lc + b Ls (default 1000; neural_style 100)."),
    ] = None,
    tv_weight: Annotated[
        float | None,
        typer.Option(help="Total-variation weight (default 0; neural_style 0.001)."),
    ] = None,
    pooling: Annotated[
        str | None, typer.Option(help="max or avg (default avg; neural_style max).")
    ] = None,
    image_size: SizeOption = None,
    upscale: UpscaleOption = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the noise start (default 0).")] = None,
    print_every: Annotated[
        int, typer.Option(help="Print losses every N iterations (0: never).")
    ] = 50,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Stylise CONTENT with the Gram method of Gatys et al. (pixel optimisation, slow).

    Each iteration is a forward and backward pass through VGG-19 to relu5_1:
    about 0.65 s per iteration at 256 px on a 2-core CPU (500 iterations: about
    5 minutes), more as the pixel count grows; `python -m benchmarks gatys`
    measures your machine. A terminal shows a progress bar with the loss and
    the time left.
    """
    with reported(debug):
        from adain.gatys import gatys as run_gatys
        from adain.image import save_image

        _check_outputs(content, style, output, None, overwrite)
        config = _config(
            preset,
            steps=steps,
            init=init,
            optimizer=optimizer,
            lr=lr,
            content_weight=content_weight,
            style_weight=style_weight,
            tv_weight=tv_weight,
            pooling=pooling,
            image_size=image_size,
            seed=seed,
        )
        net, content_t, style_t = _model_and_images(
            model, revision, device, content, style, config.image_size, upscale
        )
        with iterations("Gatys", config.steps, quiet, print_every) as update:
            result = run_gatys(
                content_t,
                style_t,
                config,
                model=net,
                callback=lambda step, losses, image: update(step, losses),
            )
        save_image(result, output)
    if not quiet:
        typer.echo(str(output))


def _numbers(text: str, kind: type, name: str) -> list[Any]:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} takes comma-separated numbers, got {text!r}") from None


@app.command()
def compare(
    content: ContentArgument,
    style: StyleArgument,
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file (.png).")],
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
    ] = None,
    alphas: Annotated[str, typer.Option(help="AdaIN alphas, comma-separated.")] = "0.25,0.5,1",
    steps: Annotated[str, typer.Option(help="Gatys iteration counts, comma-separated.")] = (
        "10,100,500"
    ),
    preset: PresetOption = "gatys2016",
    init: InitOption = None,
    image_size: SizeOption = None,
    upscale: UpscaleOption = False,
    model: Model = None,
    revision: Revision = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Compare AdaIN (several alphas) with Gatys (several iteration counts) in one figure.

    The Gatys run takes as long as `adain gatys` with the largest --steps (see
    its help); a terminal shows a progress bar with the loss and the time left.
    """
    alpha_values = _numbers(alphas, float, "--alphas")
    step_values = _numbers(steps, int, "--steps")
    with reported(debug):
        from adain.compare import compare as run_compare
        from adain.image import save_image
        from adain.outputs import write_atomically

        _check_outputs(content, style, output, json_path, overwrite)
        config = _config(preset, init=init, image_size=image_size)
        net, content_t, style_t = _model_and_images(
            model, revision, device, content, style, config.image_size, upscale
        )
        total = max(step_values, default=0)
        with iterations("Gatys", total, quiet) as update:
            figure, report = run_compare(
                content_t,
                style_t,
                net,
                alpha_values,
                step_values,
                config,
                callback=lambda step, losses, image: update(step, losses),
            )
        save_image(figure, output)
        if json_path is not None:
            text = json.dumps(report, indent=2) + "\n"
            write_atomically(json_path, lambda handle: handle.write(text.encode()))
    if not quiet:
        typer.echo(str(output))
