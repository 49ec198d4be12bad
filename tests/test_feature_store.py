"""FeatureStore: rectangles written in tiles read back the same, in memory or from a file."""

from __future__ import annotations

import pytest
import torch

from adain.engine.features import FeatureStore


def _write_in_tiles(store: FeatureStore, full: torch.Tensor, step: int) -> None:
    height, width = full.shape[2:]
    for top in range(0, height, step):
        for left in range(0, width, step):
            rows, cols = (top, min(top + step, height)), (left, min(left + step, width))
            store.put(rows, cols, full[:, :, slice(*rows), slice(*cols)])


@pytest.mark.parametrize("spill", [False, True])
def test_round_trip_of_overlapping_rectangles(tmp_path, spill):
    full = torch.randn(2, 5, 11, 13, generator=torch.Generator().manual_seed(0))
    with FeatureStore(tuple(full.shape), spill=spill, directory=str(tmp_path)) as store:
        _write_in_tiles(store, full, step=4)
        # Reads span several written tiles, as pass two's halos do.
        for rows, cols in [((0, 11), (0, 13)), ((2, 9), (3, 12)), ((10, 11), (12, 13))]:
            got = store.get(rows, cols)
            assert torch.equal(got, full[:, :, slice(*rows), slice(*cols)])


def test_spilled_map_is_a_file_that_disappears(tmp_path):
    store = FeatureStore((1, 4, 64, 64), spill=True, directory=str(tmp_path))
    # An anonymous temporary file: nothing to clean up in the folder, even after a crash.
    assert list(tmp_path.iterdir()) == []
    store.close()
    with pytest.raises(AssertionError, match="closed"):
        store.get((0, 1), (0, 1))


def test_spilled_map_reads_back_channels_last_and_sparse(tmp_path):
    shape = (1, 256, 256, 256)  # 64 MiB in the file, none of it in memory
    with FeatureStore(shape, spill=True, directory=str(tmp_path)) as store:
        assert store._memory is None
        tile = torch.ones(1, 256, 16, 256)
        store.put((32, 48), (0, 256), tile)
        got = store.get((32, 48), (0, 256))
        assert torch.equal(got, tile)
        assert got.is_contiguous(memory_format=torch.channels_last)  # as the runner wants it
        # Never written: the file is sparse and reads as zeros.
        assert torch.equal(store.get((0, 4), (0, 8)), torch.zeros(1, 256, 4, 8))


def test_a_full_disk_says_what_to_do(tmp_path, monkeypatch):
    def no_space(*args):
        raise OSError(28, "No space left on device")

    with FeatureStore((1, 2, 4, 4), spill=True, directory=str(tmp_path)) as store:
        monkeypatch.setattr("adain.engine.features.os.pwrite", no_space)
        with pytest.raises(OSError, match="No space left on device.*point TMPDIR at a larger disk"):
            store.put((0, 2), (0, 4), torch.zeros(1, 2, 2, 4))
