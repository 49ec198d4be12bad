"""Where the metric networks' weights come from: local folders or Hub repositories, at run time.

Nothing is downloaded unless asked: sources are given with ``--metric-weights`` (repeatable) or
``$ADAIN_METRIC_WEIGHTS`` (several separated by spaces or commas). Each file is looked up in the
sources in order, under each of its accepted names; ``.safetensors`` files are read as such,
``.pth`` files with ``torch.load(weights_only=True)`` (never unpickling code). A network whose
files are found nowhere is reported unavailable in one line that says what to provide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from adain.evaluation.networks import LPIPS, InceptionFeatures

METRIC_WEIGHTS_ENV = "ADAIN_METRIC_WEIGHTS"
# Accepted file names, ours first, then the names the files are published under.
LPIPS_BACKBONE_FILES = ("lpips_alexnet.safetensors", "alexnet-owt-7be5be79.pth")
LPIPS_LINEAR_FILES = ("lpips_alex.safetensors", "alex.pth")
INCEPTION_FILES = ("art_inception.safetensors", "art_inception.pth")
ART_INCEPTION_REPO = "matthias-wright/art_inception"
WHAT_TO_PROVIDE = (
    f"pass --metric-weights DIR or ORG/NAME (repeatable; or set ${METRIC_WEIGHTS_ENV}) holding "
    "alexnet-owt-7be5be79.pth (torchvision's AlexNet) and alex.pth (the lpips package's "
    "weights/v0.1/alex.pth) for LPIPS, and art_inception.pth (Hub repository "
    f"{ART_INCEPTION_REPO}) for FID and ArtFID"
)


@dataclass
class MetricNetworks:
    """The networks found; ``unavailable`` says in one line what is missing and what to do."""

    lpips: LPIPS | None = None
    inception: InceptionFeatures | None = None
    unavailable: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # role -> file it was loaded from

    def to(self, device: torch.device | str) -> MetricNetworks:
        for net in (self.lpips, self.inception):
            if net is not None:
                net.to(device)
        return self


def read_state(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or, for any other suffix, ``torch.load(weights_only)``.

    Raises:
        ValueError: one line naming the file, for an unreadable file or one without tensors.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickled code, not a tensor file at all
        reason = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(
            f"{path} is not a readable weights file ({type(error).__name__}: {reason}); "
            "download it again"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a checkpoint dict that wraps the weights
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def sources_from_env() -> list[str]:
    """The sources in ``$ADAIN_METRIC_WEIGHTS`` (spaces or commas between them)."""
    return os.environ.get(METRIC_WEIGHTS_ENV, "").replace(",", " ").split()


def _hub_file(source: str, names: Sequence[str], offline: str | None) -> str | None:
    """The first of ``names`` in the Hub repository ``source`` (``org/name[@revision]``)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from adain.weights.download import verify_download

    repo_id, _, revision = source.partition("@")
    for name in names:
        try:
            path = hf_hub_download(
                repo_id, name, revision=revision or None, local_files_only=offline is not None
            )
        except (EntryNotFoundError, LocalEntryNotFoundError):
            continue  # not in this repository (or, offline, not cached): try the next name
        except RepositoryNotFoundError:
            raise ValueError(
                f"--metric-weights {source}: no such folder, and no Hub repository with this id"
            ) from None
        except RevisionNotFoundError:
            raise ValueError(f"--metric-weights {source}: no revision {revision!r}") from None
        verify_download(path)
        return path
    return None


def _find(sources: Sequence[str], names: Sequence[str], offline: str | None) -> str | None:
    for source in sources:
        folder = Path(source).expanduser()
        if folder.is_dir():
            found = [folder / n for n in names if (folder / n).is_file()]
            if found:
                return str(found[0])
        elif folder.exists():
            raise ValueError(f"--metric-weights {source} is a file: give its folder")
        elif "/" in source and not source.startswith((".", "/", "~")):
            path = _hub_file(source, names, offline)
            if path is not None:
                return path
        else:
            raise ValueError(f"--metric-weights {source}: no such folder (nor a Hub id, org/name)")
    return None


def load_metric_networks(sources: Sequence[str] | None = None) -> MetricNetworks:
    """Build LPIPS and the ArtFID Inception from the files the sources hold.

    Args:
        sources: local folders or Hub ids (``org/name`` or ``org/name@revision``), searched in
            order; ``None`` reads :data:`METRIC_WEIGHTS_ENV`. Hub ids are only read from the
            cache while the Hub cannot be reached.

    Raises:
        ValueError: a source that is neither a folder nor a Hub repository, or a file found but
            unreadable or of the wrong architecture (one line naming it).
    """
    sources = list(sources) if sources is not None else sources_from_env()
    if not sources:
        return MetricNetworks(
            unavailable=f"LPIPS, FID and ArtFID unavailable (no metric weights given): "
            f"{WHAT_TO_PROVIDE}"
        )
    offline = None
    if any(not Path(s).expanduser().exists() for s in sources):
        from adain.weights.hub import hub_unreachable

        offline = hub_unreachable()
    networks = MetricNetworks()
    backbone = _find(sources, LPIPS_BACKBONE_FILES, offline)
    linear = _find(sources, LPIPS_LINEAR_FILES, offline)
    inception = _find(sources, INCEPTION_FILES, offline)
    if backbone and linear:
        networks.lpips = LPIPS(
            read_state(backbone), read_state(linear), "alex", source=f"{backbone} + {linear}"
        )
        networks.files.update(lpips_backbone=backbone, lpips_linear=linear)
    if inception:
        networks.inception = InceptionFeatures(read_state(inception), source=inception)
        networks.files["inception"] = inception
    missing = [
        name
        for name, found in (
            (LPIPS_BACKBONE_FILES[-1], backbone),
            (LPIPS_LINEAR_FILES[-1], linear),
            (INCEPTION_FILES[-1], inception),
        )
        if not found
    ]
    if missing:
        lost = []
        if networks.lpips is None:
            lost.append("LPIPS")
        if networks.inception is None:
            lost.append("FID")
        lost.append("ArtFID")
        where = ", ".join(sources) + (f"; the Hub is unreachable: {offline}" if offline else "")
        networks.unavailable = (
            f"{', '.join(lost)} unavailable ({', '.join(missing)} not found in {where}): "
            f"{WHAT_TO_PROVIDE}"
        )
    return networks
