"""``adain stylize-dataset``: mirrored outputs, draws as a pure function of (seed, path), the
manifest, ranks, resuming after a kill, parquet shards and bad input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, smooth_image
from PIL import Image
from typer.testing import CliRunner

import adain.dataset.run as dataset_run
from adain.cli import app
from adain.dataset.assign import AlphaRange, assign
from adain.dataset.plan import DatasetConfig
from adain.dataset.run import stylize_dataset
from adain.efdm import resample
from adain.image import load_image, to_pil, to_tensor
from adain.style import StyleStats

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

CLASSES = {"cat": range(0, 5), "dog": range(10, 14)}


@pytest.fixture
def tree(tmp_path: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """A class-folder dataset (PNG, one unreadable file), three style images and a model."""
    source = tmp_path / "source"
    for name, seeds in CLASSES.items():
        (source / name).mkdir(parents=True)
        for seed in seeds:
            to_pil(smooth_image(seed, 40, 48)).save(source / name / f"img{seed}.png")
    (source / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (source / "notes.txt").write_text("not an image: ignored")
    styles = tmp_path / "styles"
    styles.mkdir()
    for seed in range(3):
        to_pil(smooth_image(100 + seed, 32, 36)).save(styles / f"style{seed}.png")
    return {"source": source, "styles": styles, "model": tiny_model_dir, "root": tmp_path}


def _config(tree: dict[str, Path], output: Path, **extra) -> DatasetConfig:
    # Styles at 64 px rather than 512: the tiny model's figures stay fast.
    values = {"alpha": "0.4:1", "batch_size": 3, "workers": 0, "device": "cpu", "style_size": 64}
    values.update(extra)
    return DatasetConfig(
        source=str(tree["source"]), styles=[str(tree["styles"])], output=output,
        model=str(tree["model"]), **values,
    )  # fmt: skip


def _manifest(out: Path) -> list[dict]:
    return pq.read_table(out / ".manifest" / "manifest.parquet").to_pylist()


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".manifest" not in p.parts
    }


# Draws --------------------------------------------------------------------------------------


def test_draws_are_a_pure_function_of_seed_and_path():
    alpha = AlphaRange.parse("0.25:0.75")
    first = assign(7, "cat/img0.png", 10, alpha, styles_per_image=3)
    assert first == assign(7, "cat/img0.png", 10, alpha, styles_per_image=3)
    assert first != assign(8, "cat/img0.png", 10, alpha, styles_per_image=3)
    assert len({style for style, _ in first}) == 3  # distinct styles for one image
    assert all(0.25 <= value <= 0.75 for _, value in first)
    # The scheme, written out independently: sha256 of the key, first 8 bytes mod the styles.
    digest = hashlib.sha256(b"adain-dataset/1\x007\x00cat/img0.png\x000\x000").digest()
    assert first[0][0] == int.from_bytes(digest[:8], "big") % 10
    assert first[0][1] == pytest.approx(0.25 + 0.5 * int.from_bytes(digest[8:16], "big") / 2**64)
    # Roughly uniform over the styles: 4000 keys over 4 styles, each within 10% of 1000.
    counts = np.bincount([assign(0, f"k{i}", 4, alpha)[0][0] for i in range(4000)], minlength=4)
    assert counts.min() > 900 and counts.max() < 1100, counts
    assert assign(0, "x", 5, AlphaRange.parse("0.8"))[0][1] == 0.8
    with pytest.raises(ValueError, match="--alpha"):
        AlphaRange.parse("1:0.5")
    with pytest.raises(ValueError, match="--alpha"):
        AlphaRange.parse("much")


# Folder trees -------------------------------------------------------------------------------


def test_outputs_mirror_the_tree_and_the_manifest_records_them(tree, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "stylize-dataset", str(tree["source"]), "--styles", str(tree["styles"]), "-o",
            str(out), "--model", str(tree["model"]), "--alpha", "0.4:1", "--batch-size", "3",
            "--workers", "0", "--device", "cpu", "--json", "--seed", "3", "--style-size", "64",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["outputs"] == 9 and summary["unreadable"] == 1 and summary["manifest"]
    written = _files(out)
    expected = sorted(f"{c}/img{s}.png" for c, seeds in CLASSES.items() for s in seeds)
    assert sorted(written) == expected  # same relative paths and names, class folders kept
    rows = _manifest(out)
    assert [r["source"] for r in rows] == sorted(expected + ["dog/broken.png"])
    broken = next(r for r in rows if r["source"] == "dog/broken.png")
    assert broken["status"] == "unreadable" and "broken.png" in broken["error"]
    model = make_model()  # the same weights as tiny_model_dir
    styles = sorted(tree["styles"].iterdir())
    for row in rows:
        if row["status"] != "ok":
            continue
        style, alpha = assign(3, row["source"], 3, AlphaRange.parse("0.4:1"))[0]
        assert (row["style"], row["alpha"], row["seed"]) == (styles[style].name, alpha, 3)
        data = written[row["output"]]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        output = Image.open(io.BytesIO(data))
        assert (row["width"], row["height"]) == output.size == (48, 40)
        # Against the model called directly with that style and alpha.
        content = to_tensor(Image.open(tree["source"] / row["source"]).convert("RGB"))
        with torch.no_grad():
            # Styles are resized to --style-size first (shorter side; default 512).
            stats = model.style_stats(to_tensor(load_image(styles[style], size=64)))
            reference = model(content, stats, alpha).clamp(0, 1).mul(255).round()
        got = torch.from_numpy(np.array(output)).permute(2, 0, 1).float()
        assert (got - reference[0]).abs().max() <= 1.0  # float rounding of the batched call


def test_one_and_two_processes_make_the_same_dataset(tree, tmp_path: Path):
    one = stylize_dataset(_config(tree, tmp_path / "one"), rank=0, world=1)
    assert one.manifest is not None
    first = stylize_dataset(_config(tree, tmp_path / "two"), rank=0, world=2)
    assert first.manifest is None  # rank 1 has not run yet: nothing merged
    assert 0 < first.images < one.images
    second = stylize_dataset(_config(tree, tmp_path / "two"), rank=1, world=2)
    assert second.manifest is not None
    assert first.images + second.images == one.images  # disjoint shards covering the source
    assert _manifest(tmp_path / "one") == _manifest(tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_resume_after_a_kill_finishes_the_same_dataset(tree, tmp_path: Path, monkeypatch):
    reference = tmp_path / "reference"
    stylize_dataset(_config(tree, reference), rank=0, world=1)
    out = tmp_path / "out"
    calls = []
    real = dataset_run._file_records

    def killed_after_two_batches(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(dataset_run, "_file_records", killed_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        stylize_dataset(_config(tree, out), rank=0, world=1)
    monkeypatch.setattr(dataset_run, "_file_records", real)
    assert 0 < len(_files(out)) < len(_files(reference))
    assert not (out / ".manifest" / "manifest.parquet").exists()
    resumed = stylize_dataset(_config(tree, out), rank=0, world=1)
    # The first batch of 3 was recorded. The second one's files were written while the model ran
    # the third, but not recorded: they are made again and found identical.
    assert resumed.already_done == 3 and resumed.images == 7
    assert _files(out) == _files(reference)
    assert _manifest(out) == _manifest(reference)
    # A finished run is verified: a deleted output is made again, a changed one is refused.
    (out / "cat" / "img1.png").unlink()
    again = stylize_dataset(_config(tree, out), rank=0, world=1)
    assert again.images == 1 and (out / "cat" / "img1.png").is_file()
    (out / "dog" / "img10.png").write_bytes(b"edited")
    with pytest.raises(ValueError, match=r"img10.png was changed after it was written"):
        stylize_dataset(_config(tree, out), rank=0, world=1)


def test_efdm_transfer_is_passed_through_and_recorded(tree, tmp_path: Path):
    out = tmp_path / "efdm"
    summary = stylize_dataset(_config(tree, out, transfer="efdm", alpha="1"), rank=0, world=1)
    assert summary.outputs == 9
    rows = [r for r in _manifest(out) if r["status"] == "ok"]
    assert {r["transfer"] for r in rows} == {"efdm"}
    row = rows[0]
    model = make_model()
    style = load_image(tree["styles"] / row["style"], size=64)
    with torch.no_grad():
        stats = model.style_stats(to_tensor(style), transfer="efdm")
        # The bank keeps each style's sorted features at the presets' 1024 quantiles.
        stats = StyleStats(stats.mean, stats.std, quantiles=resample(stats.quantiles, 1024))
        content = to_tensor(Image.open(tree["source"] / row["source"]).convert("RGB"))
        reference = model(content, stats, 1.0, transfer="efdm").clamp(0, 1).mul(255).round()
        adain = model(content, stats, 1.0).clamp(0, 1).mul(255).round()
    got = torch.from_numpy(np.array(Image.open(out / row["output"]))).permute(2, 0, 1).float()
    assert (got - reference[0]).abs().max() <= 1.0
    assert (got - adain[0]).abs().max() > 5.0  # not AdaIN's output


def test_bad_input_is_refused_before_anything_is_written(tree, tmp_path: Path):
    runner = CliRunner()

    def run(source: Path, styles: Path, out: Path, *extra: str):
        args = ["stylize-dataset", str(source), "-s", str(styles), "-o", str(out)]
        options = ["--model", str(tree["model"]), "--device", "cpu", "--style-size", "64"]
        return runner.invoke(app, [*args, *options, *extra])

    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", tree["styles"], tmp_path / "out1")
    assert result.exit_code == 1 and "no images" in result.output
    result = run(tree["source"], tmp_path / "empty", tmp_path / "out2")
    assert (
        result.exit_code == 1 and "--styles" in result.output and "no style images" in result.output
    )
    result = run(tree["source"], tree["styles"], tree["source"] / "stylised")
    assert result.exit_code == 1 and "inside the source" in result.output
    assert len(result.output.strip().splitlines()) == 1  # one line, no traceback
    assert not any(p.exists() for p in [tmp_path / "out1", tmp_path / "out2"])
    assert not (tree["source"] / "stylised").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    result = run(tree["source"], tree["styles"], foreign)
    assert result.exit_code == 1 and "already holds files" in result.output
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    out = tmp_path / "out"
    assert run(tree["source"], tree["styles"], out, "--workers", "0").exit_code == 0
    result = run(tree["source"], tree["styles"], out, "--seed", "5")
    assert result.exit_code == 1 and "other settings (seed: 0 then, 5 now)" in result.output


# Parquet shards -----------------------------------------------------------------------------


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    to_pil(smooth_image(seed, 32, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _shard(path: Path, seeds: range, row_group_size: int) -> None:
    """A shard in the Hugging Face layout: an Image struct column, a label, feature metadata."""
    images = [{"bytes": _png(s), "path": f"{s}.png"} for s in seeds]
    images[1]["bytes"] = b"garbage"  # one unreadable row
    table = pa.table({"image": images, "label": [s % 3 for s in seeds]})
    features = {"image": {"_type": "Image"}, "label": {"dtype": "int64", "_type": "Value"}}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata), path, row_group_size=row_group_size)


def test_parquet_shards_keep_their_columns_and_add_the_style(tree, tmp_path: Path):
    source = tmp_path / "parquet"
    _shard(source / "data" / "train-00000-of-00001.parquet", range(6), row_group_size=4)
    out = tmp_path / "out"
    config = DatasetConfig(
        source=str(source), styles=[str(tree["styles"])], output=out, model=str(tree["model"]),
        styles_per_image=2, batch_size=2, workers=0, device="cpu", style_size=64,
    )  # fmt: skip
    summary = stylize_dataset(config, rank=0, world=1)
    assert summary.unreadable == 1 and summary.outputs == 2 * 5
    parts = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.parquet") if ".manifest" not in p.parts
    )
    assert parts == [
        "data/train-00000-of-00001-00000.parquet",
        "data/train-00000-of-00001-00001.parquet",
    ]
    first = pq.read_table(out / parts[0])
    assert first.column_names == ["image", "label", "style", "alpha"]
    assert first.column("label").to_pylist() == [0, 0, 2, 2, 0, 0]  # rows 0, 2, 3, each twice
    features = json.loads(first.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"} and features["style"]["_type"] == "Value"
    rows = {(r["source"], r["k"]): r for r in _manifest(out)}
    assert rows[("data/train-00000-of-00001.parquet#1", 0)]["status"] == "unreadable"
    for position, cell in enumerate(first.column("image").to_pylist()):
        record = next(r for r in rows.values() if r["output"] == f"{parts[0]}#{position}")
        assert hashlib.sha256(cell["bytes"]).hexdigest() == record["sha256"]
        assert Image.open(io.BytesIO(cell["bytes"])).size == (40, 32)
        assert first.column("style").to_pylist()[position] == record["style"]
    # A re-run verifies the shards and has nothing left to do.
    assert stylize_dataset(config, rank=0, world=1).images == 0


def test_hub_dataset_source_and_preset_styles(tree, tmp_path: Path, stand_in_hub):
    buffer = io.BytesIO()
    _shard(tmp_path / "shard.parquet", range(3), row_group_size=10)
    stand_in_hub.commit(
        "org/photos", {"data/train.parquet": (tmp_path / "shard.parquet").read_bytes()},
        repo_type="dataset",
    )  # fmt: skip
    presets = tmp_path / "presets"
    StyleStats(torch.rand(1, 64, 1, 1), torch.rand(1, 64, 1, 1) + 0.1).save(
        presets / "a.safetensors"
    )
    del buffer
    out = tmp_path / "out"
    config = DatasetConfig(
        source="hf://datasets/org/photos", styles=[str(presets)], output=out,
        model=str(tree["model"]), workers=0, device="cpu", style_size=64,
    )  # fmt: skip
    summary = stylize_dataset(config, rank=0, world=1)
    assert summary.outputs == 2 and summary.unreadable == 1
    assert {r["style"] for r in _manifest(out) if r["status"] == "ok"} == {"a.safetensors"}


@pytest.mark.slow
def test_accelerate_launch_with_two_cpu_processes(tree, tmp_path: Path):
    pytest.importorskip("accelerate")
    out = tmp_path / "launched"
    command = [
        # --multi_gpu picks accelerate's torchrun launcher (--cpu alone would start one process
        # for multi-CPU training through MPI); --device cpu keeps every rank on the CPU.
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "-m", "adain", "stylize-dataset", str(tree["source"]), "-s", str(tree["styles"]),
        "-o", str(out), "--model", str(tree["model"]), "--alpha", "0.4:1", "--batch-size", "3",
        "--workers", "0", "--device", "cpu", "--style-size", "64",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2" in done.stdout and "rank 1/2" in done.stdout
    stylize_dataset(_config(tree, tmp_path / "one"), rank=0, world=1)
    assert _manifest(out) == _manifest(tmp_path / "one")
    assert _files(out) == _files(tmp_path / "one")


@pytest.mark.slow  # real 512 px style encodes in the baseline: seconds
def test_benchmark_smoke_run(tmp_path: Path, capsys):
    from benchmarks.dataset_bench import main

    out = tmp_path / "bench.json"
    main(["--images", "4", "--styles", "1", "--size", "32", "--width", "8", "--workers", "0",
          "--repeats", "1", "--batch-size", "2", "--json", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["images_per_s"]["baseline"] > 0 and result["images_per_s"]["adain"] > 0
    rates = result["images_per_s"]
    assert result["speedup"] == pytest.approx(rates["adain"] / rates["baseline"])
    # 48.4 GFLOP: the real model's convolutions at 224 px would be; at 32 px, (32 / 224)^2 of it.
    assert result["gflop_per_image"] == pytest.approx(48.44 * (32 / 224) ** 2, rel=0.05)
    assert "target >= 3x" in capsys.readouterr().out
