"""Hub datasets as training sources (hf://datasets/ORG/NAME), through the loopback stand-in Hub."""

from __future__ import annotations

import io

import pytest
from conftest import smooth_image

from train.data import list_items

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _shard(seeds: range) -> bytes:
    """A parquet shard in huggan/wikiart's layout: ``image`` is a struct {bytes, path}."""
    from adain.image import to_pil

    rows = []
    for seed in seeds:
        buffer = io.BytesIO()
        to_pil(smooth_image(seed, 40, 48)).save(buffer, format="PNG")
        rows.append({"bytes": buffer.getvalue(), "path": f"{seed}.png"})
    out = io.BytesIO()
    pq.write_table(pa.table({"image": rows}), out, row_group_size=2)
    return out.getvalue()


def test_hub_dataset_shards_are_fetched_and_read(stand_in_hub):
    files = {
        "data/train-00000-of-00002.parquet": _shard(range(0, 3)),
        "data/train-00001-of-00002.parquet": _shard(range(3, 5)),
        "README.md": b"# a dataset card, not downloaded",
    }
    first = stand_in_hub.commit("org/paintings", files, repo_type="dataset")
    stand_in_hub.commit("org/paintings", {"data/extra.parquet": _shard(range(5, 9))},
                        repo_type="dataset")  # fmt: skip
    items = list_items(["hf://datasets/org/paintings"])
    assert len(items) == 3 + 2 + 4
    assert {item.path.name for item in items} == {
        "train-00000-of-00002.parquet", "train-00001-of-00002.parquet", "extra.parquet"
    }  # fmt: skip
    assert not any(p.name == "README.md" for p in items[0].path.parents[1].rglob("*"))
    # A pinned revision sees the dataset as it was.
    assert len(list_items([f"hf://datasets/org/paintings@{first}"])) == 5


def test_unknown_hub_dataset_is_a_clear_error(stand_in_hub):
    with pytest.raises(ValueError, match=r"hf://datasets/org/missing: could not fetch"):
        list_items(["hf://datasets/org/missing"])
