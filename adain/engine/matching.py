"""EFDM over a kept feature map: the global sort, in channel groups, within bounded memory.

EFDM ranks every position of a channel among all the others (:mod:`adain.efdm`), so unlike
AdaIN's moments it cannot be gathered strip by strip. It does not need to be: pass one of
:func:`adain.engine.strips.run` keeps the content's relu4_1 anyway (in memory, or in a temporary
file above the memory budget). In its aftermath each group of channels is sorted over the whole
map and replaced by its target features (matched, blended per region and with alpha); pass two
then decodes those strip by strip with nothing left to do. Channels are independent, so the
groups give exactly the whole-map result; a group's size bounds the sort's working memory.

An in-memory map is transformed in place. A spilled map is read back one channel group at a
time (each read covers the whole file: ``ceil(C / group)`` reads) and each group's targets go to
a temporary file of their own, so memory stays at one group whatever the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import torch
from torch import Tensor

from adain.efdm import efdm_transfer
from adain.engine.features import FeatureStore

# Working memory of one value in a group's sort (bytes): the value, its int64 rank order, the
# float64 position in the style, two int64 gather indices, the interpolation weight, the two
# gathered style values and the result (4 + 8 + 8 + 8 + 8 + 4 + 4 + 4 + 4 = 52), rounded up.
BYTES_PER_VALUE = 64
# A group's working memory. Small next to the default 2 GiB budget, whose strip activations are
# freed before the sort runs; large enough that groups stay few (a 2048 px map, 64k positions
# per channel, sorts in 8 groups of 64 channels).
GROUP_BYTES = 256 << 20
# Rows of a spilled map read back at once (bytes of all channels).
READ_BYTES = 64 << 20


def channel_groups(
    batch: int, channels: int, positions: int, budget: int = GROUP_BYTES
) -> list[tuple[int, int]]:
    """Spans of channels whose sort fits ``budget`` bytes (at least one channel each)."""
    per_channel = BYTES_PER_VALUE * batch * positions
    size = max(1, min(channels, budget // max(per_channel, 1)))
    return [(start, min(start + size, channels)) for start in range(0, channels, size)]


def sort_channels(feats: Tensor, budget: int = GROUP_BYTES) -> Tensor:
    """Each channel of ``(B, C, h, w)`` features sorted: ``(B, C, h*w)`` (a new tensor), one
    channel group at a time."""
    flat = feats.flatten(2).float().clone()
    for start, stop in channel_groups(flat.shape[0], flat.shape[1], flat.shape[2], budget):
        flat[:, start:stop] = torch.sort(flat[:, start:stop], dim=-1).values
    return flat


def match_in_place(
    feats: Tensor,
    quantiles: Sequence[Tensor],
    alpha: float,
    share: Tensor | None,
    budget: int = GROUP_BYTES,
) -> None:
    """Replace a whole ``(B, C, h, w)`` map by its EFDM targets
    (:func:`adain.efdm.efdm_transfer`), one channel group at a time."""
    batch, channels, height, width = feats.shape
    for start, stop in channel_groups(batch, channels, height * width, budget):
        group = [q[:, start:stop] for q in quantiles]
        feats[:, start:stop] = efdm_transfer(feats[:, start:stop], group, alpha, share)


class MatchedFeatures:
    """The EFDM targets of a spilled feature map, one temporary file per channel group; read
    like a :class:`FeatureStore` (``shape``, ``get``)."""

    def __init__(
        self,
        store: FeatureStore,
        quantiles: Sequence[Tensor],
        alpha: float,
        share: Tensor | None,
        device: torch.device,
        budget: int = GROUP_BYTES,
    ):
        self.shape = store.shape
        self.parts: list[FeatureStore] = []
        batch, channels, height, width = store.shape
        try:
            for start, stop in channel_groups(batch, channels, height * width, budget):
                group = _read_channels(store, start, stop).to(device)
                styles = [q[:, start:stop] for q in quantiles]
                target = efdm_transfer(group, styles, alpha, share)
                del group
                part = FeatureStore((batch, stop - start, height, width), spill=True)
                self.parts.append(part)
                part.put((0, height), (0, width), target)
        except BaseException:
            self.close()
            raise

    def get(self, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
        """The ``(B, C, rows, cols)`` rectangle of the targets (CPU)."""
        return torch.cat([part.get(rows, cols) for part in self.parts], dim=1)

    def __enter__(self) -> MatchedFeatures:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the groups' files."""
        for part in self.parts:
            part.close()
        self.parts = []


def _read_channels(store: FeatureStore, start: int, stop: int) -> Tensor:
    """Channels ``[start, stop)`` of the whole stored map, ``(B, stop - start, H, W)`` on the
    CPU, read in bands of rows."""
    batch, channels, height, width = store.shape
    out = torch.empty(batch, stop - start, height, width)
    band = max(1, READ_BYTES // (4 * batch * channels * width))
    for top in range(0, height, band):
        rows = (top, min(top + band, height))
        out[:, :, slice(*rows)] = store.get(rows, (0, width))[:, start:stop]
    return out
