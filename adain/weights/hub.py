"""Where models come from: one resolution order, the Hub with clear errors, and the fallbacks.

Order for every entry point: explicit argument (``--model``), then ``$ADAIN_MODEL``, then
:data:`DEFAULT_REPO_ID` at :data:`DEFAULT_REVISION`. A local folder wins over a Hub id of the same
spelling. A Hub repository holding ``model.safetensors`` loads directly; one holding only the
original ``vgg_normalised.pth`` + ``decoder.pth`` (a model repo or a Space: ``spaces/org/name``)
is converted on the fly and cached. While the default repository is not published (the Hub
answers 404), the default falls back to the original release files (:mod:`adain.weights.download`).
Without a network only the cache is read: one quick request (:func:`hub_unreachable`) tells,
instead of the client's retries, and an uncached model fails in one line (:func:`offline_message`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from adain.weights.download import (
    DEFAULT_ORIGINAL_URLS,
    ORIGINAL_URLS_ENV,
    cache_root,
    check_sha256,
    converted_dir,
    original_model_dir,
    verify_download,
)
from adain.weights.folder import CARD_NAME, WEIGHTS_NAME, write_folder

# Not published yet: see README "Where the weights come from". hub/manifest.toml mirrors these.
DEFAULT_REPO_ID = "adain-project/adain-vgg19"
# Pinned once the repository is published, so a push to main never changes what users get.
DEFAULT_REVISION: str | None = None
# sha256 of model.safetensors at DEFAULT_REVISION, checked after download once known.
DEFAULT_SHA256: str | None = None
MODEL_ENV = "ADAIN_MODEL"
# Seconds to wait for the Hub to answer before calling the network absent; a refused connection
# or a failed DNS lookup answers at once, a dropped one takes this long. Ours: a few seconds.
PROBE_TIMEOUT = 5.0
_REPO_ID = re.compile(r"^(?:(spaces|models)/)?([\w.-]+/[\w.-]+)$")


def resolve_model_id(model: str | Path | None = None) -> str:
    """Explicit argument, then the ``ADAIN_MODEL`` environment variable, then the default."""
    if model is not None and str(model):
        return str(model)
    return os.environ.get(MODEL_ENV) or DEFAULT_REPO_ID


def resolve_model_folder(
    model: str | Path | None = None,
    revision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local ``save_pretrained`` folder for ``model`` (resolved by :func:`resolve_model_id`),
    downloading and converting as needed: the one resolution of ``AdaIN.from_pretrained``,
    ``load_model`` and the command line.

    Args:
        model: a folder, a Hub id (``org/name``, ``spaces/org/name``), or ``None``.
        revision: Hub branch, tag or commit (ignored for folders).
        cache_dir, force_download, token, local_files_only: as for ``hf_hub_download``.

    Raises:
        ValueError: one line saying what was not found and what to do (unknown repository,
            revision or file, offline without a cached copy, a corrupted download).
        OSError: the original-file fallback could not download.
    """
    model_id = resolve_model_id(model)
    path = Path(model_id).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{model_id} is a file: --model takes a folder or a Hub repository id")
    if path.is_dir():
        return path
    return fetch_model(
        model_id, revision, cache_dir=cache_dir, force_download=force_download, token=token,
        local_files_only=local_files_only,
    )  # fmt: skip


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached now, or ``None`` when it answers.

    ``HF_HUB_OFFLINE`` is honoured without a request. Otherwise one HEAD request to the endpoint,
    without retries, tells a missing network (refused, no route, no DNS) within
    :data:`PROBE_TIMEOUT`: ``hf_hub_download`` would retry an uncached file's failed HEAD five
    times with back-off (``http_backoff``: 1+2+4+8+8 s), about 25 s per file, logging each retry.
    """
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return "HF_HUB_OFFLINE=1"
    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT)  # any HTTP answer will do
    except httpx2.TransportError as error:
        return f"no connection to {constants.ENDPOINT}: {str(error) or type(error).__name__}"
    return None


def fetch_model(
    model_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local ``save_pretrained`` folder for a Hub id, downloading (and converting) as needed.

    Without a network (or with ``HF_HUB_OFFLINE=1``, or ``local_files_only``) only the cache is
    read, and an uncached model fails at once with :func:`offline_message`.
    """
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    match = _REPO_ID.match(model_id)
    # "./name", "../name" and "~/name" are folders to everyone but the Hub's id syntax.
    if match is None or model_id.startswith((".", "~", "/")):
        raise ValueError(
            f"{model_id} is neither an existing folder nor a Hub repository id (org/name)"
        )
    repo_type = "space" if match.group(1) == "spaces" else "model"
    repo_id = match.group(2)
    is_default = model_id == DEFAULT_REPO_ID
    if revision is None and is_default:
        revision = DEFAULT_REVISION
    at = f"{model_id}@{revision or 'main'}"
    offline = "local_files_only=True" if local_files_only else hub_unreachable()
    options = {
        "cache_dir": cache_dir, "force_download": force_download, "token": token,
        "local_files_only": offline is not None,
    }  # fmt: skip
    try:
        try:
            weights = _download(repo_id, WEIGHTS_NAME, repo_type, revision, **options)
        except EntryNotFoundError:
            # No model.safetensors (or, offline, none cached): the repo may hold the original files.
            return fetch_original(repo_id, repo_type, revision, **options)
        _download(repo_id, "config.json", repo_type, revision, **options)
        if is_default and DEFAULT_SHA256 is not None:
            check_sha256(weights, DEFAULT_SHA256)
        return Path(weights).parent
    except RepositoryNotFoundError:
        if is_default:
            try:
                return original_model_dir()
            except OSError as error:
                raise OSError(
                    f"the default {DEFAULT_REPO_ID} is not published on the Hub yet, and "
                    f"downloading the original release files failed: {error}. Ways out: download "
                    "vgg_normalised.pth and decoder.pth yourself, run `adain convert "
                    "vgg_normalised.pth decoder.pth -o DIR` and pass --model DIR; or set "
                    f"{ORIGINAL_URLS_ENV} to a mirror"
                ) from None
        raise ValueError(
            f"{model_id}: no Hub repository with this id, and no local folder of that name: "
            "check the spelling, or log in (`hf auth login`) if it is private"
        ) from None
    except RevisionNotFoundError:
        raise ValueError(
            f"{model_id}: revision {revision!r} not found (no such branch, tag or commit)"
        ) from None
    except LocalEntryNotFoundError:
        if is_default and (converted_dir() / WEIGHTS_NAME).is_file():
            return converted_dir()
        raise ValueError(offline_message(at, offline)) from None
    except EntryNotFoundError:
        raise ValueError(
            f"{at} has neither {WEIGHTS_NAME} nor the original vgg_normalised.pth + "
            "decoder.pth: is it an adain model repository?"
        ) from None


def fetch_original(
    repo_id: str, repo_type: str = "model", revision: str | None = None, **options: Any
) -> Path:
    """Convert ``vgg_normalised.pth`` + ``decoder.pth`` held in a Hub repo (or Space); cached.

    The converted folder lives under ``$ADAIN_CACHE/hub``, keyed by the commit the files came
    from, so a moved branch converts again and a pinned commit never does. ``options`` go to
    ``hf_hub_download``; ``force_download`` converts again too.
    """
    from huggingface_hub import hf_hub_url

    from adain.weights.card import file_sources
    from adain.weights.convert import save_original  # torch: only when converting

    vgg = Path(_download(repo_id, "vgg_normalised.pth", repo_type, revision, **options))
    decoder = Path(_download(repo_id, "decoder.pth", repo_type, revision, **options))
    commit = vgg.parent.name  # the snapshot folder is named by the commit sha
    target = cache_root() / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}" / commit
    if options.get("force_download") or not (target / WEIGHTS_NAME).is_file():
        sources = {
            hf_hub_url(repo_id, name, repo_type=repo_type, revision=commit): sha
            for name, sha in file_sources(vgg, decoder).items()
        }
        save_original(vgg, decoder, target, overwrite=True, sources=sources)
    return target


def offline_message(model_id: str, reason: str | None = None) -> str:
    """The one message for an uncached model while the Hub cannot be reached (``reason``)."""
    message = (
        f"{model_id} is not in the local cache and the Hub cannot be reached "
        f"({reason or 'HF_HUB_OFFLINE=1 or no network'}). Ways out: --model DIR with a local "
        "model folder; a Hub id already cached (`hf cache ls`); the original release files ("
        + " and ".join(DEFAULT_ORIGINAL_URLS)
        + ") converted with `adain convert vgg_normalised.pth decoder.pth -o DIR`; or connect once."
    )
    if model_id.split("@")[0] == DEFAULT_REPO_ID and DEFAULT_REVISION is None:
        message += (
            f" The default {DEFAULT_REPO_ID} is not published yet: once connected, adain "
            f"downloads and converts those files itself (from a mirror if {ORIGINAL_URLS_ENV} "
            "names one)."
        )
    return message


def _download(
    repo_id: str, filename: str, repo_type: str, revision: str | None, **options: Any
) -> str:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision, **options)
    except (OSError, ValueError):
        raise  # the client's own errors (HTTP, not found, offline, size mismatch)
    except Exception as error:  # transport errors left after the client's retries (httpx2)
        raise OSError(
            f"{repo_id}: downloading {filename} failed ({error}); run again to retry"
        ) from None
    verify_download(path)
    return path


class SavesPretrained(Protocol):
    """Anything with the Hub mixin's ``save_pretrained`` (an ``AdaIN``)."""

    def save_pretrained(self, save_directory: str | Path) -> object: ...


def save_model_dir(
    model: SavesPretrained,
    path: str | Path,
    overwrite: bool = False,
    model_card: str | None = None,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then rename it into place.

    A crash part-way leaves either the old folder or the new one, never a mix
    (:func:`~adain.weights.folder.write_folder`).

    Args:
        model: the model to write (model.safetensors, config.json, README.md).
        path: destination folder; an existing non-empty one needs ``overwrite``.
        overwrite: replace an existing folder, only one holding nothing but those three files.
        model_card: README.md text replacing the mixin's generated card.
        inputs: files the model was made from: never the folder, never inside it.
    """

    def fill(staging: Path) -> None:
        model.save_pretrained(staging)
        if model_card is not None:
            (staging / CARD_NAME).write_text(model_card, encoding="utf-8")

    return write_folder(path, fill, overwrite=overwrite, inputs=inputs)
