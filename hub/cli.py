"""``push`` and ``publish-original``: mounted into ``adain`` and run as ``python -m hub``.

No torch at import: ``adain --help`` stays instant. Heavy modules load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Publish adain models to the Hugging Face Hub.",
)

RepoId = Annotated[str, typer.Option("--repo-id", help="Hub repository, ORG/NAME.")]
Branch = Annotated[
    str, typer.Option("--branch", "--revision", help="Branch to commit to (created if new).")
]
Private = Annotated[bool, typer.Option(help="Create the repository as private.")]
Tag = Annotated[str | None, typer.Option(help="Tag the new commit (e.g. v1).")]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Also keep the built folder here.")
]
Overwrite = Annotated[
    bool, typer.Option(help="Replace an existing --output folder holding only model files.")
]
Evaluation = Annotated[
    Path | None, typer.Option(help="Markdown file with measured figures for the model card.")
]
DryRun = Annotated[
    bool, typer.Option(help="Build the folder and card (needs --output) without pushing.")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _check(repo_id: str, dry_run: bool, output: Path | None) -> None:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise typer.BadParameter(f"{repo_id!r}: expected ORG/NAME", param_hint="--repo-id")
    if dry_run and output is None:
        raise typer.BadParameter("--dry-run needs --output DIR to keep the folder")


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise typer.BadParameter(f"cannot read {path}: {error.strerror}") from None


def _report(result: object, dry_run: bool) -> None:
    from hub.push import PushResult

    assert isinstance(result, PushResult)
    if dry_run:
        typer.echo(f"built {result.url} (model.safetensors sha256 {result.sha256}); not pushed")
        return
    typer.echo(f"pushed {result.url} at {result.commit}")
    typer.echo(f"model.safetensors sha256 {result.sha256}")


def _run(function: object, *args: object, **kwargs: object) -> object:
    """Call the publishing function; expected failures become one-line errors."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return function(*args, **kwargs)  # type: ignore[operator]
    except HfHubHTTPError as error:
        raise _fail(f"the Hub refused the upload: {str(error).splitlines()[0]}") from None
    except httpx2.TransportError as error:  # the network failed after the reachability check
        raise _fail(f"lost the connection to the Hub ({error}); run again") from None
    except (ValueError, OSError) as error:
        raise _fail(" ".join(str(error).split())) from None


@app.command()
def push(
    source: Annotated[
        Path, typer.Argument(help="save_pretrained folder, or a training checkpoint (.pt).")
    ],
    *,
    repo_id: RepoId,
    branch: Branch = "main",
    private: Private = False,
    tag: Tag = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="For a checkpoint: model (folder or Hub id) it was trained with."),
    ] = None,
    output: Output = None,
    dry_run: DryRun = False,
    evaluation: Evaluation = None,
    overwrite: Overwrite = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="Also add onnx/: the model as ONNX graphs (adain export), recorded in the card.",
        ),
    ] = False,
) -> None:
    """Push a model folder or checkpoint with a rendered model card, in one commit."""
    _check(repo_id, dry_run, output)
    from hub.push import push as run_push

    result = _run(
        run_push, source, repo_id, branch=branch, private=private, tag=tag, encoder=encoder,
        output=output, dry_run=dry_run, evaluation=_read(evaluation), overwrite=overwrite,
        onnx=onnx,
    )  # fmt: skip
    _report(result, dry_run)


@app.command("publish-original")
def publish_original(
    vgg_file: Annotated[Path, typer.Argument(help="Released vgg_normalised.pth (or .t7).")],
    decoder_file: Annotated[Path, typer.Argument(help="Released decoder.pth (or .t7).")],
    *,
    repo_id: RepoId,
    branch: Branch = "main",
    private: Private = False,
    tag: Tag = None,
    output: Output = None,
    dry_run: DryRun = False,
    evaluation: Evaluation = None,
    overwrite: Overwrite = False,
) -> None:
    """Convert the original release files and push them with their provenance."""
    _check(repo_id, dry_run, output)
    from hub.push import publish_original as run_publish

    result = _run(
        run_publish, vgg_file, decoder_file, repo_id, branch=branch, private=private, tag=tag,
        output=output, dry_run=dry_run, evaluation=_read(evaluation), overwrite=overwrite,
    )  # fmt: skip
    _report(result, dry_run)


@app.command()
def space(
    *,
    repo_id: Annotated[str, typer.Option("--repo-id", help="The Space, ORG/NAME.")],
    model: Annotated[
        str | None,
        typer.Option(help="Hub model repository (default: hub/manifest.toml's published one)."),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Branch, tag or commit of --model; pinned as a commit.")
    ] = None,
    private: Private = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also keep the built Space here (new).")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Publish the web demo (`adain demo`) as a Gradio Space, pinned to a model commit."""
    _check(repo_id, dry_run, output)
    from hub.space import SpaceResult, publish_space

    result = _run(
        publish_space, repo_id, model=model, revision=revision, private=private, output=output,
        dry_run=dry_run,
    )  # fmt: skip
    assert isinstance(result, SpaceResult)
    pinned = f"model {result.model}@{result.revision}"
    if dry_run:
        typer.echo(f"built {result.folder} ({pinned}); not pushed")
    else:
        typer.echo(f"pushed {result.url} at {result.commit} ({pinned})")
