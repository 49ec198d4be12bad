"""FeatureStore: rectangles written in tiles read back the same, in memory or from a file;
existing features wrapped and handed back."""

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


def test_wrap_holds_the_features_and_take_hands_them_over():
    feats = torch.randn(1, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    with FeatureStore.wrap(feats) as store:
        assert store.shape == (1, 3, 5, 6)
        # Nothing copied: reads are views of the caller's map, writes land in it.
        got = store.get((1, 4), (2, 6))
        assert got.data_ptr() == feats[:, :, 1:4, 2:6].data_ptr()
        store.put((0, 1), (0, 6), torch.zeros(1, 3, 1, 6))
        assert torch.equal(feats[:, :, 0], torch.zeros(1, 3, 6))
        taken = store.take()
        assert taken is feats
        with pytest.raises(AssertionError, match="only an in-memory store"):
            store.take()  # the store no longer holds the map


def test_take_of_a_store_built_in_memory(tmp_path):
    full = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(2))
    with FeatureStore(tuple(full.shape)) as store:
        _write_in_tiles(store, full, step=2)
        assert torch.equal(store.take(), full)
    with (
        FeatureStore(tuple(full.shape), spill=True, directory=str(tmp_path)) as store,
        pytest.raises(AssertionError, match="only an in-memory store"),
    ):
        store.take()  # a spilled map is read back in rectangles, never whole
