"""Where tiled stylisation keeps relu4_1 features between its passes: in memory or in a file.

Pass one of :func:`adain.engine.strips.run` encodes the image strip by strip to gather
AdaIN's global statistics; keeping those features saves encoding the image a second time in pass
two (a third of the work). At 8192x8192 they take 2 GiB in fp32, so above the memory budget they
go to an anonymous temporary file instead: the kernel deletes it when it is closed or the process
dies, so nothing is left behind, and ``pread``/``pwrite`` keep it out of the process's resident
memory (a memory-mapped file would count towards it).

On disk the map is laid out ``(H, W, B, C)``: one feature row of a strip is one contiguous byte
range, and a strip read back is channels_last ``(B, C, h, w)`` without a copy.
"""

from __future__ import annotations

import os
import tempfile
from types import TracebackType

import torch
from torch import Tensor

from adain.engine.heap import long_lived_allocations

_FLOAT_BYTES = 4


class FeatureStore:
    """A ``(B, C, H, W)`` fp32 feature map written and read in rectangles.

    Args:
        shape: ``(B, C, H, W)`` of the whole map.
        device: where an in-memory map lives (a spilled one is read back on the CPU).
        spill: keep the map in a temporary file instead of memory.
        directory: folder for the file (default: :func:`tempfile.gettempdir`, i.e. ``TMPDIR``).
    """

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        device: torch.device | str = "cpu",
        spill: bool = False,
        directory: str | None = None,
    ):
        self.shape = shape
        self._memory: Tensor | None = None
        self._file = None
        self._directory = directory or tempfile.gettempdir()
        if spill:
            self._file = tempfile.TemporaryFile(dir=directory)
            size = _FLOAT_BYTES * shape[0] * shape[1] * shape[2] * shape[3]
            try:
                os.ftruncate(self._file.fileno(), size)  # sparse until written
            except OSError as error:
                self._file.close()
                raise self._disk_error(error) from error
        else:
            with long_lived_allocations():
                self._memory = torch.empty(shape, dtype=torch.float32, device=device)

    @classmethod
    def wrap(cls, feats: Tensor) -> FeatureStore:
        """An in-memory store around existing features (nothing is copied)."""
        store = cls.__new__(cls)
        store.shape = tuple(feats.shape)  # type: ignore[assignment]
        store._memory, store._file, store._directory = feats, None, tempfile.gettempdir()
        return store

    def take(self) -> Tensor:
        """The whole in-memory map; the store no longer holds it."""
        assert self._memory is not None, "only an in-memory store hands its map over"
        memory, self._memory = self._memory, None
        return memory

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Free the map (deletes the file)."""
        self._memory = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _disk_error(self, error: OSError) -> OSError:
        return OSError(
            f"cannot keep tile features in a temporary file in {self._directory} ({error}): "
            "free disk space there, point TMPDIR at a larger disk, or raise --max-memory"
        )

    def _offset(self, row: int, col: int) -> int:
        batch, channels, _, width = self.shape
        return _FLOAT_BYTES * (row * width + col) * batch * channels

    def put(self, rows: tuple[int, int], cols: tuple[int, int], feats: Tensor) -> None:
        """Store ``(B, C, rows, cols)`` features at rows ``[rows[0], rows[1])`` and columns
        ``[cols[0], cols[1])`` of the map."""
        if self._memory is not None:
            self._memory[:, :, slice(*rows), slice(*cols)] = feats
            return
        assert self._file is not None, "the store is closed"
        # (h, w, B, C): each feature row of the piece is contiguous.
        block = feats.detach().float().cpu().permute(2, 3, 0, 1).contiguous().numpy()
        descriptor = self._file.fileno()
        for i, row in enumerate(range(*rows)):
            data = memoryview(block[i]).cast("B")
            try:
                written = os.pwrite(descriptor, data, self._offset(row, cols[0]))
            except OSError as error:  # ENOSPC, EIO
                raise self._disk_error(error) from error
            if written != len(data):
                error = OSError(f"short write ({written} of {len(data)} bytes)")
                raise self._disk_error(error)

    def get(self, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
        """The ``(B, C, rows, cols)`` rectangle; a spilled map returns a channels_last CPU
        tensor."""
        if self._memory is not None:
            return self._memory[:, :, slice(*rows), slice(*cols)]
        assert self._file is not None, "the store is closed"
        batch, channels = self.shape[:2]
        block = torch.empty(rows[1] - rows[0], cols[1] - cols[0], batch, channels)
        array = block.numpy()
        descriptor = self._file.fileno()
        for i, row in enumerate(range(*rows)):
            target = memoryview(array[i]).cast("B")
            read = os.preadv(descriptor, [target], self._offset(row, cols[0]))
            if read != len(target):
                raise OSError(f"short read from the feature file ({read} of {len(target)} bytes)")
        return block.permute(2, 3, 0, 1)
