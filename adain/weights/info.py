"""What a model folder or Hub repository holds: config, card, parameter counts, revision.

Reads ``config.json``, ``README.md`` and the safetensors header only: no weights are loaded and
torch is not imported, so ``adain info`` answers in well under a second for a local folder.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from adain.weights.folder import WEIGHTS_NAME
from adain.weights.hub import DEFAULT_REPO_ID, DEFAULT_REVISION, resolve_model_id

# A safetensors header is JSON of a few KB per hundred tensors; more than this is not one.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
_COMMIT = re.compile(r"[0-9a-f]{40}")


def read_safetensors_header(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{tensor name: {"dtype", "shape", "data_offsets"}}`` from a safetensors file's header.

    The format is an 8-byte little-endian header length, then that many bytes of JSON.
    """
    path = Path(path)
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER_BYTES:
            raise ValueError(f"{path} is not a safetensors file (header of {length:,} bytes)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a safetensors file ({error})") from error
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (header is not a JSON object)")
    return {name: value for name, value in header.items() if name != "__metadata__"}


def count_parameters(header: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Element counts per top-level module (``encoder``, ``decoder``) and ``total``."""
    counts: dict[str, int] = {}
    for name, tensor in header.items():
        size = 1
        for dim in tensor["shape"]:
            size *= int(dim)
        part = name.split(".", 1)[0]
        counts[part] = counts.get(part, 0) + size
    counts["total"] = sum(counts.values())
    return counts


def _card_summary(readme: Path) -> dict[str, Any]:
    """YAML metadata and the first prose paragraph of a model card."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(readme)
    paragraphs = [p.strip() for p in card.text.split("\n\n") if p.strip()]
    prose = [p for p in paragraphs if not p.startswith(("#", "<!--", "```", "|"))]
    summary = " ".join(prose[0].split()) if prose else ""
    return {"metadata": card.data.to_dict(), "summary": summary}


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or "\\" in model_id or model_id.count("/") > 1


def _hub_error(error: Exception, model_id: str, revision: str | None) -> Exception:
    """A one-line ``ValueError`` for the Hub failures a user can fix; others are returned as is."""
    from huggingface_hub import errors

    if isinstance(error, errors.RevisionNotFoundError):
        return ValueError(f"{model_id} has no revision {revision!r}: check the branch, tag, commit")
    if isinstance(error, errors.RepositoryNotFoundError):
        return ValueError(
            f"{model_id} is neither a folder nor a Hub repository (private ones need `hf auth "
            "login`): check the id or the path"
        )
    if isinstance(error, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        return ValueError(
            f"{model_id} is not in the local cache and the Hub cannot be reached: connect, or "
            "give a model folder"
        )
    return error


def describe_model(model: str | Path | None = None, revision: str | None = None) -> dict[str, Any]:
    """Describe a model folder or Hub repository without loading its weights.

    Args:
        model: a folder written by ``save_pretrained``/``adain convert``, a Hub repository id,
            or ``None`` for ``$ADAIN_MODEL`` / the default repository.
        revision: Hub branch, tag or commit (ignored for folders).

    Returns:
        A JSON-able dict: ``model``, ``source`` (``"folder"`` or ``"hub"``), ``path``,
        ``revision`` (the resolved commit, or ``None`` for a folder outside the Hub cache),
        ``config``, ``parameters`` (per module and total, or ``None`` when the weights are
        neither local nor reachable), ``weights_bytes`` and ``card`` (``metadata``, ``summary``).

    Raises:
        ValueError: a missing folder, a folder without config.json, a broken weights file.
        OSError: Hub errors (unknown repository or revision, unreachable Hub) from huggingface_hub.
    """
    model_id = resolve_model_id(model)
    path = Path(model_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{model_id} is a file: give a model folder or a Hub repository id")
        folder, source = path, "folder"
        # A snapshot folder of the Hub cache is named by its commit.
        commit = path.resolve().name if path.resolve().parent.name == "snapshots" else None
        resolved = commit if commit and _COMMIT.fullmatch(commit) else None
    elif _looks_like_path(model_id):
        raise ValueError(f"model folder {model_id} does not exist")
    else:
        from huggingface_hub import snapshot_download

        if revision is None and model_id == DEFAULT_REPO_ID:
            revision = DEFAULT_REVISION
        try:
            folder = Path(
                snapshot_download(
                    repo_id=model_id, revision=revision, allow_patterns=["config.json", "README.md"]
                )
            )
        except Exception as error:
            raise _hub_error(error, model_id, revision) from error
        source, resolved = "hub", folder.name
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder} has no config.json: not a save_pretrained model folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON ({error})") from error
    weights = _weights_file(model_id, folder, source, resolved)
    if weights is not None:
        parameters: dict[str, int] | None = count_parameters(read_safetensors_header(weights))
    else:
        parameters = _remote_parameters(model_id, resolved)
    readme = folder / "README.md"
    return {
        "model": model_id,
        "source": source,
        "path": str(folder),
        "revision": resolved,
        "config": config,
        "parameters": parameters,
        "weights_bytes": weights.stat().st_size if weights else None,
        "card": _card_summary(readme) if readme.is_file() else None,
    }


def _weights_file(model_id: str, folder: Path, source: str, commit: str | None) -> Path | None:
    """The local weights file: in the folder, or already in the Hub cache (never downloaded)."""
    if source == "folder":
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise ValueError(f"{folder} has no {WEIGHTS_NAME}: not a save_pretrained model folder")
        return weights
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, WEIGHTS_NAME, revision=commit)
    return Path(cached) if isinstance(cached, str) else None


def _remote_parameters(model_id: str, commit: str | None) -> dict[str, int] | None:
    """Counts from the Hub's safetensors header (a small ranged read, not the weights)."""
    from huggingface_hub import HfApi

    try:
        # A client made per call: the module-level helpers keep the endpoint seen at import.
        metadata = HfApi().get_safetensors_metadata(model_id, revision=commit)
    except Exception:  # counts are optional: the rest of the answer stands without them
        return None
    file = metadata.files_metadata.get(WEIGHTS_NAME)
    if file is None:
        return None
    header = {name: {"shape": info.shape} for name, info in file.tensors.items()}
    return count_parameters(header)


def format_description(info: dict[str, Any]) -> str:
    """:func:`describe_model`'s answer as aligned lines for a terminal."""
    revision = info["revision"] or "none (a local folder)"
    lines = [
        f"model       {info['model']}",
        f"source      {info['source']}: {info['path']}",
        f"revision    {revision}",
        "config      " + ", ".join(f"{k}={v}" for k, v in sorted(info["config"].items())),
    ]
    parameters = info["parameters"]
    if parameters is None:
        lines.append("parameters  unknown (weights not downloaded)")
    else:
        lines.append("parameters  " + ", ".join(f"{k} {v:,}" for k, v in parameters.items()))
    if info["weights_bytes"] is not None:
        lines.append(f"weights     {info['weights_bytes'] / 1e6:.1f} MB")
    card = info["card"]
    if card is None:
        lines.append("card        none (no README.md)")
    else:
        metadata = card["metadata"]
        for key in sorted(metadata):
            value = metadata[key]
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"card        {key}: {shown}")
        if card["summary"]:
            lines.append(f"summary     {card['summary']}")
    return "\n".join(lines)
