"""``adain gatys`` and ``adain compare``: the Gram method, and its comparison with AdaIN.

Registered by ``adain/cli/__init__.py``. No torch at module level, so ``adain --help`` stays
instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from adain.cli.common import fail

app = typer.Typer(add_completion=False)

PRESET_NAMES = ("gatys2016", "neural_style")

ModelOption = Annotated[
    str | None, typer.Option(help="Hub repository id or model folder (default: $ADAIN_MODEL).")
]
PresetOption = Annotated[
    str, typer.Option(help="gatys2016 (paper: avg pooling, noise start) or neural_style.")
]
StepsOption = Annotated[int | None, typer.Option(help="Iterations (default: the preset's).")]
InitOption = Annotated[
    str | None, typer.Option(help="Start image: content, noise or adain (the AdaIN output).")
]
SizeOption = Annotated[
    int | None,
    typer.Option(help="Longer side in px the images are resized to (0 keeps; default: preset)."),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]


def _config(preset: str, **fields: Any) -> Any:
    """The preset with every option the user gave (``None`` keeps the preset's value)."""
    from adain.gatys import PRESETS

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    overrides = {k: v for k, v in fields.items() if v is not None}
    if overrides.get("image_size") == 0:
        overrides["image_size"] = None  # 0 keeps the input size
    return PRESETS[preset](**overrides)


def _load(path: Path, image_size: int | None) -> Any:
    """An image file as a (1, 3, H, W) tensor, its longer side scaled to image_size."""
    from adain.image import load_image, resize_shorter, to_tensor

    image = load_image(path)
    if image_size:
        shorter = round(image_size * min(image.size) / max(image.size))
        image = resize_shorter(image, max(1, shorter))
    return to_tensor(image)


def _model_and_images(
    model: str | None, device: str, content: Path, style: Path, image_size: int | None
) -> tuple[Any, Any, Any]:
    from adain.api import get_device
    from adain.model import load_model

    net = load_model(model).to(get_device(device)).eval()
    return net, _load(content, image_size), _load(style, image_size)


@app.command()
def gatys(
    content: Annotated[Path, typer.Argument(help="Content image.")],
    style: Annotated[Path, typer.Argument(help="Style image.")],
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image file.")],
    preset: PresetOption = "gatys2016",
    steps: StepsOption = None,
    init: InitOption = None,
    optimizer: Annotated[str | None, typer.Option(help="lbfgs or adam.")] = None,
    lr: Annotated[float | None, typer.Option(help="Step size (default: per optimiser).")] = None,
    content_weight: Annotated[float | None, typer.Option(help="alpha in L = a Lc + b Ls.")] = None,
    style_weight: Annotated[float | None, typer.Option(help="beta in L = a Lc + b Ls.")] = None,
    tv_weight: Annotated[float | None, typer.Option(help="Total-variation weight.")] = None,
    pooling: Annotated[str | None, typer.Option(help="max or avg.")] = None,
    image_size: SizeOption = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the noise start.")] = None,
    print_every: Annotated[int, typer.Option(help="Print losses every N steps (0: never).")] = 50,
    model: ModelOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Stylise CONTENT with the Gram method of Gatys et al. (pixel optimisation, slow).

    Each iteration is a forward and backward pass through VGG-19 to relu5_1: about 1 s at 256 px
    and 4 s at 512 px on 2 CPU cores (python -m benchmarks gatys measures your machine).
    """
    from adain.gatys import gatys as run_gatys
    from adain.image import save_image

    try:
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

        def report(step: int, losses: dict[str, float], image: Any) -> None:
            if print_every and (step % print_every == 0 or step == config.steps):
                parts = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
                typer.echo(f"step {step}/{config.steps} {parts}", err=True)

        net, content_t, style_t = _model_and_images(
            model, device, content, style, config.image_size or None
        )
        result = run_gatys(content_t, style_t, config, model=net, callback=report)
        save_image(result, output)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(str(output))


def _numbers(text: str, kind: type, name: str) -> list[Any]:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} takes comma-separated numbers, got {text!r}") from None


@app.command()
def compare(
    content: Annotated[Path, typer.Argument(help="Content image.")],
    style: Annotated[Path, typer.Argument(help="Style image.")],
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
    model: ModelOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Compare AdaIN (several alphas) with Gatys (several iteration counts) in one figure."""
    from adain.compare import compare as run_compare
    from adain.image import save_image

    alpha_values = _numbers(alphas, float, "--alphas")
    step_values = _numbers(steps, int, "--steps")
    try:
        config = _config(preset, init=init, image_size=image_size)
        net, content_t, style_t = _model_and_images(
            model, device, content, style, config.image_size or None
        )
        figure, report = run_compare(content_t, style_t, net, alpha_values, step_values, config)
        save_image(figure, output)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=2) + "\n")
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(str(output))
