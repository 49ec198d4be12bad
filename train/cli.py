"""``adain train`` / ``python -m train``: parse flags into a TrainConfig, call fit(), export.

No torch import at module level: ``adain --help`` must stay instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from train.config import TrainConfig

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


# Options whose declaration spans several lines, named here so that train()'s signature stays short.
ConfigFile = Annotated[
    str | None,
    typer.Option(help="TOML file or preset: paper, reference_pytorch, reference_lua, smoke."),
]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set lr=5e-5 (repeatable)."),
]
Content = Annotated[
    list[str] | None,
    typer.Option(
        help="Content images: folder, parquet file or hf://datasets/ORG/NAME (repeatable)."
    ),
]
Style = Annotated[
    list[str] | None,
    typer.Option(help="Style images: folder, parquet file or hf://datasets/ORG/NAME (repeatable)."),
]
Autoencoder = Annotated[
    bool | None,
    typer.Option(
        "--autoencoder/--no-autoencoder",
        help="Sanity mode: reconstruct the content (alpha = 0). Try it if outputs are grey.",
    ),
]
Resume = Annotated[
    str | None,
    typer.Option(
        help="'latest' (the run folder's latest.pt) or a checkpoint path. The run's "
        "recorded config supplies every setting; options given again must agree with it, "
        "except --max-steps, the save/log/sample intervals, --num-workers, --mixed-precision."
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Start again from step 0 in a run folder that holds checkpoints: replaces that "
        "run's checkpoints, config.toml, metrics, samples and model/, no other file."
    ),
]
ExportTo = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="Model folder to write when the run completes (default: RUN/model). With "
        "--resume CKPT --max-steps <= its step, exports that checkpoint without training.",
    ),
]
PushToHub = Annotated[
    str | None, typer.Option(help="Also upload the exported folder to ORG/NAME (network).")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _given(
    config_file: str | None, sets: list[str], flags: dict[str, Any]
) -> list[tuple[str, str, Any]]:
    """Every value given, as ``(key, how it was spelt, value)`` in rising precedence."""
    from train.config import parse_set, preset_path, read_toml, toml_value

    given = []
    if config_file:
        path = preset_path(config_file)
        for key, value in read_toml(path).items():
            given.append((key, f"{key} = {toml_value(value)} in {path}", value))
    for key, value in parse_set(sets).items():
        given.append((key, f"--set {key}={toml_value(value)}", value))
    for key, value in flags.items():
        if value in (None, []):
            continue
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            label = option if value else f"--no-{option[2:]}"
        elif isinstance(value, list):
            label = " ".join(f"{option} {item}" for item in value)
        else:
            label = f"{option} {value}"
        given.append((key, label, value))
    return given


def resolve_config(config_file: str | None, sets: list[str], flags: dict[str, Any]) -> Any:
    """defaults < ``--config`` < ``--set`` < explicit flags (``None`` flags are not given).

    With ``resume`` set, the recorded config of the checkpoint it names takes the place of the
    defaults (:func:`train.checkpoints.recorded_config`): the values given again must agree with it,
    except the keys in :data:`train.config.RESUME_MAY_CHANGE`, or a
    :class:`train.config.ResumeError` names the option that differs. No checkpoint to resume
    (``--resume latest`` without a latest.pt), or a corrupt one, is a ``ResumeError`` too.
    """
    from train.config import ResumeError, TrainConfig, override, resumed

    given = _given(config_file, sets, flags)
    config = override(TrainConfig(), {key: value for key, _, value in given})
    if config.resume:
        from train.checkpoints import recorded_config

        try:
            recorded = recorded_config(config)
        except ValueError as error:
            raise ResumeError(str(error)) from None
        if recorded is not None:
            # --resume latest found the run in config.output: it stays there even if not given.
            where = {"output": config.output} if config.resume == "latest" else {}
            config = override(resumed(*recorded, given), where)
    return config.validate()


def _build_config(config_file: str | None, sets: list[str], flags: dict[str, Any]) -> TrainConfig:
    """:func:`resolve_config`; a bad key or value is a usage error, a resume conflict one line."""
    from train.config import ResumeError

    try:
        return resolve_config(config_file, sets, flags)
    except ResumeError as error:
        raise _fail(str(error)) from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _fit_and_export(
    config: TrainConfig, export_to: Path | None, push_to_hub: str | None, overwrite: bool
) -> Path:
    """Train (or resume), then export the final checkpoint.

    A run stopped by SIGINT/SIGTERM (:class:`train.signals.Stopped`, checkpoint saved) says how to
    continue on stderr and exits 128 + the signal: 130 (SIGINT), 143 (SIGTERM), without export.
    """
    from adain.outputs import check_folder
    from adain.weights.folder import MODEL_FILES
    from train.export import export
    from train.loop import fit
    from train.signals import Stopped

    try:
        if export_to is not None:  # refused before training, not after it
            check_folder(export_to, MODEL_FILES, (), overwrite=True, what="--export")
        checkpoint = fit(config, overwrite=overwrite)
        return export(checkpoint, export_to or Path(config.output) / "model", push_to_hub)
    except Stopped as stopped:
        typer.echo(str(stopped), err=True)
        raise typer.Exit(stopped.exit_code) from None
    except (ValueError, OSError) as error:
        raise _fail(" ".join(str(error).split())) from None


@app.command()
def train(
    *,
    config: ConfigFile = None,
    set_: Sets = None,
    content: Content = None,
    style: Style = None,
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
    autoencoder: Autoencoder = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
    export_to: ExportTo = None,
    push_to_hub: PushToHub = None,
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
    resolved = _build_config(config, set_ or [], flags)
    typer.echo(str(_fit_and_export(resolved, export_to, push_to_hub, overwrite)))


def main() -> None:
    app()
