"""``adain train`` / ``python -m train``: parse flags into a TrainConfig, call fit(), export.

No torch import at module level: ``adain --help`` must stay instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Train an AdaIN decoder.",
)

ENCODER_HELP = (
    "Loss network: a vgg_normalised .pth/.t7 file (the original release: the safe choice), an "
    "adain model folder or Hub id (its encoder), 'torchvision' (ImageNet VGG-19 with its own "
    "preprocessing, downloaded by torchvision; training with it is a known failure in "
    "pytorch-AdaIN's issues), or 'random' (untrained, for tests). Default: the default model's "
    "encoder."
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def resolve_config(config_file: str | None, sets: list[str], flags: dict[str, Any]) -> Any:
    """defaults < ``--config`` < ``--set`` < explicit flags (``None`` flags are not given)."""
    from train.config import TrainConfig, load_toml, override, parse_set

    config = load_toml(config_file) if config_file else TrainConfig()
    config = override(config, parse_set(sets))
    config = override(config, {k: v for k, v in flags.items() if v not in (None, [])})
    return config.validate()


@app.command()
def train(
    *,
    config: Annotated[
        str | None,
        typer.Option(help="TOML file or preset: paper, reference_pytorch, reference_lua, smoke."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set lr=5e-5 (repeatable)."),
    ] = None,
    content: Annotated[
        list[str] | None,
        typer.Option(
            help="Content images: folder, parquet file or hf://datasets/ORG/NAME (repeatable)."
        ),
    ] = None,
    style: Annotated[
        list[str] | None,
        typer.Option(
            help="Style images: folder, parquet file or hf://datasets/ORG/NAME (repeatable)."
        ),
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Run folder.")] = None,
    encoder: Annotated[str | None, typer.Option(help=ENCODER_HELP)] = None,
    base_channels: Annotated[
        int | None, typer.Option(help="VGG width (64; 8 for tiny test models).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step and process.")] = None,
    load_size: Annotated[int | None, typer.Option(help="Shorter side before cropping, px.")] = None,
    crop_size: Annotated[int | None, typer.Option(help="Square crop side, px.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    style_weight: Annotated[float | None, typer.Option(help="Style loss weight.")] = None,
    content_weight: Annotated[float | None, typer.Option(help="Content loss weight.")] = None,
    save_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    log_every: Annotated[int | None, typer.Option(help="Log scalars every N steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for init, sample order, crops.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="Data-loader processes.")] = None,
    mixed_precision: Annotated[str | None, typer.Option(help="no | bf16 | fp16 (GPUs).")] = None,
    autoencoder: Annotated[
        bool | None,
        typer.Option(
            "--autoencoder/--no-autoencoder",
            help="Sanity mode: reconstruct the content (alpha = 0). Try it if outputs are grey.",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="'latest' (the run folder's newest checkpoint) or a checkpoint path."),
    ] = None,
    export_to: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Model folder to write when the run completes (default: RUN/model). With "
            "--resume CKPT --max-steps <= its step, exports that checkpoint without training.",
        ),
    ] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also upload the exported folder to ORG/NAME (network).")
    ] = None,
) -> None:
    """Train an AdaIN decoder (defaults < --config < --set < flags); print the model folder."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    flags = dict(
        content=content,
        style=style,
        output=output,
        encoder=encoder,
        base_channels=base_channels,
        max_steps=max_steps,
        batch_size=batch_size,
        load_size=load_size,
        crop_size=crop_size,
        lr=lr,
        style_weight=style_weight,
        content_weight=content_weight,
        save_every=save_every,
        log_every=log_every,
        seed=seed,
        num_workers=num_workers,
        mixed_precision=mixed_precision,
        autoencoder=autoencoder,
        resume=resume,
    )
    try:
        resolved = resolve_config(config, set_ or [], flags)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    from train.export import export
    from train.loop import fit, load_checkpoint

    try:
        checkpoint = fit(resolved)
        step = load_checkpoint(checkpoint)["step"]
        if step < resolved.max_steps:
            typer.echo(f"stopped at step {step}: {checkpoint}; continue with --resume latest")
            return
        folder = export(checkpoint, export_to or Path(resolved.output) / "model", push_to_hub)
    except (ValueError, OSError) as error:
        raise _fail(" ".join(str(error).split())) from None
    typer.echo(str(folder))


def main() -> None:
    app()
