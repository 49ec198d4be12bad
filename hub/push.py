"""Publishing: model folder or checkpoint -> save_pretrained folder + model card -> one commit.

``push`` takes a ``save_pretrained`` folder or a training checkpoint (``{"decoder", "config",
"step", ...}`` as written by ``train/``); ``publish_original`` converts the original release files
and records their provenance in the card. Both push config.json, model.safetensors and README.md
in a single commit, optionally on a branch and tagged.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adain.model import AdaIN

TEMPLATE = Path(__file__).with_name("model_card.md")
MANIFEST = Path(__file__).with_name("manifest.toml")
NO_EVALUATION = "No evaluation figures have been measured for this checkpoint yet."


@dataclass(frozen=True)
class PushResult:
    """What was published: the commit, the weights' sha256 (for manifest.toml), the URL."""

    repo_id: str
    commit: str
    sha256: str
    url: str


def read_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The published checkpoints (``[default]``: repo_id, published, revision, sha256)."""
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def git_commit() -> str:
    """The code's git commit, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def render_card(
    config: dict[str, Any],
    repo_id: str,
    weights_sha256: str,
    *,
    title: str,
    provenance: str,
    training: str,
    decoder_licence: str,
    revision: str | None = None,
    deviations: str = "",
    evaluation: str = NO_EVALUATION,
    onnx: str = "",
) -> str:
    """Fill ``hub/model_card.md``; every ``$field`` must be given (a missing one raises).

    ``decoder_licence`` completes the Licences list every adain card shares
    (:func:`adain.weights.card.licences`); ``onnx`` is the card's ONNX section
    (:func:`onnx_section`), empty without an ``onnx/`` folder.
    """
    import adain
    from adain.weights.card import licences

    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=title,
        repo_id=repo_id,
        revision_arg=f', revision="{revision}"' if revision else "",
        weights_sha256=weights_sha256,
        config=json.dumps(config, sort_keys=True),
        provenance=provenance,
        training=training,
        deviations=deviations,
        evaluation=evaluation,
        onnx=onnx,
        licences=licences(decoder_licence),
        adain_version=adain.__version__,
        git_commit=git_commit(),
    )


def load_source(source: str | Path, encoder: str | None = None) -> tuple[AdaIN, dict | None]:
    """A model from a ``save_pretrained`` folder, or from a training checkpoint + an encoder.

    Args:
        source: a folder with config.json + model.safetensors, or a ``.pt`` training checkpoint.
        encoder: for a checkpoint, the model (folder or Hub id) whose encoder it was trained
            with; default as for ``adain stylize`` (``$ADAIN_MODEL``, then the default).

    Returns:
        The model and the checkpoint's training config (None for a folder).
    """
    import torch

    from adain.model import AdaIN, load_model

    source = Path(source)
    if source.is_dir():
        return AdaIN.from_pretrained(str(source)), None
    if not source.is_file():
        raise ValueError(f"{source} does not exist: give a model folder or a training checkpoint")
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{source} is not a readable checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(checkpoint, dict) or "decoder" not in checkpoint:
        raise ValueError(f"{source} is not a training checkpoint (no 'decoder' entry)")
    model = load_model(encoder)
    state = {f"decoder.{key}": value for key, value in checkpoint["decoder"].items()}
    model.load_checked(model.state_dict() | state, source=source)
    config = dict(checkpoint.get("config") or {})
    if "step" in checkpoint:
        config["step"] = checkpoint["step"]
    return model, config


ONNX_FOLDER = "onnx"


def onnx_section(folder: Path, repo_id: str) -> str:
    """The model card's ONNX section: the graphs' files and sha256, opset, measured parity."""
    from adain.weights.download import sha256_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    parity = config["parity"]
    rows = "\n".join(
        f"| `{ONNX_FOLDER}/{path.name}` | `{sha256_file(path)}` |"
        for path in sorted(folder.iterdir())
    )
    return f"""## ONNX

`{ONNX_FOLDER}/` holds this model as two ONNX graphs (opset {config["opset"]}; dynamic batch, height
and width), written by `adain export --format onnx`: `encoder.onnx` (RGB image -> relu4_1
features, mean, std) and `decoder.onnx` (features + style mean/std + alpha -> RGB image), and
fp16 twins. Checked at export against this model: max abs difference
{parity["fp32"]["max_abs"]:.2g} in fp32, {parity["fp16"]["max_abs"]:.2g} in fp16 (RGB in [0, 1]).
`{ONNX_FOLDER}/README.md` gives the inputs, outputs and an example without adain;
with adain: `adain stylize content.jpg -s style.jpg -o out.png --model {repo_id}
--backend onnxruntime --onnx {ONNX_FOLDER}`, after downloading the folder.

| file | sha256 |
|---|---|
{rows}
"""


def build_folder(
    model: AdaIN,
    folder: Path,
    card_fields: dict[str, Any],
    repo_id: str,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    onnx: bool = False,
) -> str:
    """Write the ``save_pretrained`` folder with its card, whole; return model.safetensors' sha256.

    An existing non-empty ``folder`` is refused unless ``overwrite``, and even then unless it
    holds only the three model files; an input is never the folder or inside it
    (:func:`adain.weights.folder.write_folder`). ``onnx`` adds the ``onnx/`` folder of
    ``adain export --format onnx`` (:func:`adain.export.onnx.export_onnx`, parity-checked),
    recorded in the card.
    """
    from adain.weights.download import sha256_file
    from adain.weights.folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, write_folder

    shas: list[str] = []

    def fill(staging: Path) -> None:
        model.save_pretrained(staging)
        shas.append(sha256_file(staging / WEIGHTS_NAME))
        config = json.loads((staging / CONFIG_NAME).read_text(encoding="utf-8"))
        fields = dict(card_fields)
        if onnx:
            from adain.export.onnx import export_onnx

            export_onnx(model, staging / ONNX_FOLDER, source=repo_id)
            fields["onnx"] = onnx_section(staging / ONNX_FOLDER, repo_id)
        card = render_card(config, repo_id, shas[0], **fields)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")

    write_folder(folder, fill, overwrite=overwrite, inputs=inputs)
    return shas[0]


def check_output(output: Path | None, inputs: Iterable[str | Path], overwrite: bool) -> None:
    """Refuse a bad ``--output`` folder before the model is loaded (see :func:`build_folder`)."""
    if output is not None:
        from adain.outputs import check_folder
        from adain.weights.folder import MODEL_FILES

        check_folder(output, MODEL_FILES, inputs, overwrite)


def upload(
    folder: Path,
    repo_id: str,
    *,
    branch: str = "main",
    private: bool = False,
    tag: str | None = None,
    message: str = "Upload AdaIN model",
    token: str | None = None,
) -> str:
    """Create the repo (and branch) if needed, commit the folder in one commit, tag it.

    Raises:
        OSError: the Hub cannot be reached (checked once, before any upload request).
    """
    from huggingface_hub import HfApi

    from adain.weights.hub import hub_unreachable

    if (reason := hub_unreachable()) is not None:
        raise OSError(f"cannot push to {repo_id}: the Hub cannot be reached ({reason})")
    api = HfApi(token=token)  # reads the endpoint now, so HF_ENDPOINT and tests apply
    api.create_repo(repo_id, private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    info = api.upload_folder(
        folder_path=folder, repo_id=repo_id, revision=branch, commit_message=message
    )
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid)
    return info.oid


def push(
    source: str | Path,
    repo_id: str,
    *,
    branch: str = "main",
    private: bool = False,
    tag: str | None = None,
    encoder: str | None = None,
    token: str | None = None,
    output: Path | None = None,
    dry_run: bool = False,
    evaluation: str | None = None,
    overwrite: bool = False,
    onnx: bool = False,
) -> PushResult:
    """Publish a model folder or a training checkpoint as ``repo_id`` in one commit.

    ``evaluation`` is Markdown for the card's Evaluation section (measured figures only);
    ``onnx`` adds an ``onnx/`` folder of exported graphs (:func:`build_folder`).
    """
    from adain.weights.card import UNRECORDED_DECODER

    # The encoder's model folder is read too: -o never replaces it.
    inputs = [source, *([encoder] if encoder and Path(encoder).exists() else [])]
    check_output(output, inputs, overwrite)
    model, train_config = load_source(source, encoder)
    if train_config:
        training = "Trained with `python -m train`; resolved config:\n\n```json\n"
        training += json.dumps(train_config, indent=2, sort_keys=True, default=str) + "\n```"
    else:
        training = f"Pushed from the model folder `{Path(source).name}`; no training record given."
    fields = {
        "title": repo_id.split("/")[-1],
        "provenance": f"Built from `{Path(source).name}` with `python -m hub push`.",
        "training": training,
        "decoder_licence": (
            "trained by the uploader with adain's train/ (MIT code)."
            if train_config
            else UNRECORDED_DECODER
        ),
    }
    if evaluation:
        fields["evaluation"] = evaluation
    return _publish(
        model, repo_id, fields, branch, private, tag, token, output, dry_run, overwrite, inputs,
        onnx,
    )  # fmt: skip


def publish_original(
    vgg: str | Path,
    decoder: str | Path,
    repo_id: str,
    *,
    branch: str = "main",
    private: bool = False,
    tag: str | None = None,
    token: str | None = None,
    output: Path | None = None,
    dry_run: bool = False,
    evaluation: str | None = None,
    overwrite: bool = False,
) -> PushResult:
    """Convert the original release files and publish them with their provenance."""
    from adain.model import AdaIN
    from adain.weights import card

    inputs = [vgg, decoder]
    check_output(output, inputs, overwrite)
    model = AdaIN.from_original(vgg, decoder)
    fields = {
        "title": "VGG-19 encoder + original decoder (converted release weights)",
        "provenance": card.original_provenance(card.file_sources(vgg, decoder)),
        "training": card.ORIGINAL_TRAINING,
        "decoder_licence": card.RELEASED_DECODER,
        "deviations": card.ORIGINAL_DEVIATIONS,
    }
    if evaluation:
        fields["evaluation"] = evaluation
    return _publish(
        model, repo_id, fields, branch, private, tag, token, output, dry_run, overwrite, inputs
    )


def _publish(
    model: AdaIN,
    repo_id: str,
    fields: dict[str, Any],
    branch: str,
    private: bool,
    tag: str | None,
    token: str | None,
    output: Path | None,
    dry_run: bool,
    overwrite: bool,
    inputs: list[str | Path],
    onnx: bool = False,
) -> PushResult:
    fields = fields | {"revision": tag}
    with tempfile.TemporaryDirectory(prefix="adain-push-") as tmp:
        folder = Path(output) if output is not None else Path(tmp) / "model"
        sha = build_folder(
            model, folder, fields, repo_id, overwrite=overwrite, inputs=inputs, onnx=onnx
        )
        if dry_run:
            return PushResult(repo_id, "", sha, str(folder))
        commit = upload(folder, repo_id, branch=branch, private=private, tag=tag, token=token)
    from huggingface_hub import constants

    return PushResult(repo_id, commit, sha, f"{constants.ENDPOINT}/{repo_id}")
