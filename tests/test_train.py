"""Training package: config precedence, data sources, the loop end to end, resume, signals, export.

Everything runs on CPU with width-8 models and 32 px crops of images generated in tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch
from click.testing import Result
from conftest import TINY_WIDTH, make_model, smooth_image
from original_layout import seeded_original
from typer.testing import CliRunner

from adain.image import save_image, to_pil
from train.config import (
    RESUME_MAY_CHANGE,
    ResumeError,
    TrainConfig,
    load_toml,
    override,
    parse_set,
    resumed,
    to_toml,
    toml_value,
)
from train.data import ImageSource, StepSampler, list_items
from train.loop import compute_losses, fit, load_checkpoint, lr_at

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = 12
STEPS = 10
# "The loss falls clearly": on a fixed batch, the trained decoder's total loss relative to the
# untrained one (measured here: 0.33), and the mean of the last three logged training losses
# relative to the first (measured: 0.24); smoke preset, lr 2e-3, STEPS steps.
LOSS_RATIO = 0.6
TRAIN_RATIO = 0.5


def _png_bytes(seed: int, height: int, width: int) -> bytes:
    buffer = io.BytesIO()
    to_pil(smooth_image(seed, height, width)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_parquet(path: Path, seeds: range, row_group_size: int = 4) -> Path:
    """A shard in huggan/wikiart's layout: ``image`` is a struct {bytes, path}, plus metadata."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"bytes": _png_bytes(s, 40 + 8 * (s % 3), 48), "path": f"{s}.png"} for s in seeds]
    table = pa.table({"image": rows, "artist": [f"a{s}" for s in seeds]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Content folder (nested, with a corrupt file and a 2-pixel image), style parquet, encoder."""
    root = tmp_path_factory.mktemp("train_data")
    for i in range(N_IMAGES):
        sub = "a" if i % 2 else "b/c"
        save_image(
            smooth_image(i, 40 + 8 * (i % 3), 48 + 4 * (i % 2))[0],
            root / "content" / sub / f"{i}.png",
        )
    (root / "content" / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    save_image(torch.rand(3, 2, 2), root / "content" / "tiny.png")
    (root / "content" / "notes.txt").write_text("not an image: ignored, not counted")
    _write_parquet(root / "style" / "train-00000.parquet", range(100, 100 + N_IMAGES))
    encoder = root / "tiny-model"
    make_model().save_pretrained(encoder)
    return {"content": root / "content", "style": root / "style", "encoder": encoder}


def _config(data: dict[str, Path], output: Path, **changes: object) -> TrainConfig:
    values = {
        "content": [str(data["content"])],
        "style": [str(data["style"])],
        "encoder": str(data["encoder"]),
        "base_channels": TINY_WIDTH,
        "output": str(output),
        "max_steps": STEPS,
        "save_every": STEPS // 2,
        **changes,
    }
    return override(load_toml("smoke"), values)


# Config ------------------------------------------------------------------------------------


def test_presets_load_and_paper_matches_the_paper():
    for name in ("paper", "reference_pytorch", "reference_lua", "smoke"):
        load_toml(name).validate()
    paper = load_toml("paper")
    assert (paper.load_size, paper.crop_size, paper.batch_size) == (512, 256, 8)
    assert (paper.lr, paper.lr_decay, paper.max_steps) == (1e-4, 5e-5, 160_000)
    assert (paper.content_weight, paper.style_weight, paper.style_reduction) == (1.0, 10.0, "mean")
    lua = load_toml("reference_lua")
    assert (lua.style_weight, lua.style_reduction) == (1e-2, "sum")


def test_precedence_defaults_file_set_flags(tmp_path: Path):
    from train.cli import resolve_config

    file = tmp_path / "run.toml"
    file.write_text('lr = 2e-4\nbatch_size = 4\nseed = 3\nstyle = "a"\n')
    config = resolve_config(str(file), ["batch_size=2", "seed=5"], {"seed": 9, "lr": None})
    assert config.crop_size == TrainConfig().crop_size  # default
    assert config.lr == 2e-4  # file
    assert config.batch_size == 2  # --set over file
    assert config.seed == 9  # flag over --set
    assert config.style == ["a"]  # a string for a list key becomes a one-item list


def test_unknown_keys_and_type_mismatches_are_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown config key 'learning_rate'"):
        parse_set(["learning_rate=1e-3"])
    with pytest.raises(ValueError, match="'batch_size' must be int, got float 2.5"):
        parse_set(["batch_size=2.5"])
    with pytest.raises(ValueError, match="'autoencoder' must be bool, got str 'yes'"):
        parse_set(["autoencoder=yes"])
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["lr"])
    bad = tmp_path / "bad.toml"
    bad.write_text("max_step = 10\n")
    with pytest.raises(ValueError, match=r"bad.toml: unknown config key 'max_step'"):
        load_toml(bad)
    with pytest.raises(ValueError, match="crop_size 512 is larger than load_size 256"):
        TrainConfig(load_size=256, crop_size=512).validate()
    assert parse_set(["lr=1", "output=runs/x", "autoencoder=true"]) == {
        "lr": 1.0,
        "output": "runs/x",
        "autoencoder": True,
    }


def test_resolved_config_round_trips_through_toml(tmp_path: Path):
    config = override(
        TrainConfig(), {"content": ['a "b"', "c\\d"], "lr": 3e-5, "autoencoder": True}
    )
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert load_toml(path) == config


def test_lr_is_inverse_decay():
    assert lr_at(0, 1e-4, 5e-5) == 1e-4
    assert lr_at(20_000, 1e-4, 5e-5) == pytest.approx(1e-4 / 2.0)
    assert lr_at(160_000, 1e-4, 5e-5) == pytest.approx(1e-4 / 9.0)


# Data --------------------------------------------------------------------------------------


def test_folder_and_parquet_sources_skip_and_count_bad_images(data: dict[str, Path]):
    items = list_items([data["content"]])
    assert len(items) == N_IMAGES + 2  # the .txt file is not an image; corrupt + tiny are listed
    source = ImageSource(items, load_size=48, crop_size=32, min_side=16, seed=0)
    skipped: set[str] = set()
    for sample in range(len(items)):  # one epoch visits every image once
        crop, bad = source[sample]
        assert crop.shape == (3, 32, 32) and 0 <= crop.min() and crop.max() <= 1
        skipped.update(bad)
    assert sorted(Path(s).name for s in skipped) == ["corrupt.jpg", "tiny.png"]

    rows = list_items([data["style"]])
    assert len(rows) == N_IMAGES and {r.group for r in rows} == {0, 1, 2}  # 3 row groups of 4
    parquet = ImageSource(rows, load_size=48, crop_size=32, min_side=16, seed=0)
    # Row 5 holds seed 105 at 56x48: resized so the shorter side is 48 (aspect kept), cropped.
    position = int((parquet._permutation(0) == 5).nonzero())
    crop, bad = parquet[position]
    assert bad == [] and crop.shape == (3, 32, 32)


def test_samples_are_deterministic_under_a_seed(data: dict[str, Path]):
    items = list_items([data["style"]])
    first = ImageSource(items, 48, 32, 16, seed=1)
    again = ImageSource(items, 48, 32, 16, seed=1)
    other = ImageSource(items, 48, 32, 16, seed=2)
    samples = [0, 5, N_IMAGES + 3]  # across an epoch boundary
    for sample in samples:
        assert torch.equal(first[sample][0], again[sample][0])
    assert any(not torch.equal(first[s][0], other[s][0]) for s in samples)
    epoch = sorted(int(first._permutation(0)[i]) for i in range(N_IMAGES))
    assert epoch == list(range(N_IMAGES))  # a permutation: every image once per epoch
    sampler = iter(StepSampler(batch_size=4, start_step=2, rank=1, world=2))
    assert next(sampler) == [20, 21, 22, 23]  # (step 2 * 2 processes + rank 1) * 4


def test_empty_or_missing_sources_are_clear_errors(tmp_path: Path, data: dict[str, Path]):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images .* found; point to a folder of images"):
        list_items([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no such folder or file"):
        list_items([tmp_path / "missing"])
    shard = _write_parquet(tmp_path / "x.parquet", range(2))
    with pytest.raises(ValueError, match="has no column 'pixels'"):
        list_items([shard], column="pixels")
    result = CliRunner().invoke(
        _app(),
        [
            "train",
            "--config",
            "smoke",
            "--content",
            str(tmp_path / "empty"),
            "--style",
            str(data["style"]),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code != 0
    assert "content:" in result.output and "no images" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing half-written


def _app():
    import typer

    from train.cli import app

    root = typer.Typer()
    root.add_typer(app)  # as adain/cli.py mounts it
    root.command("version")(lambda: None)  # two commands: "train" stays a subcommand name
    return root


# Loop --------------------------------------------------------------------------------------


def test_smoke_run_end_to_end_loss_falls_and_export_loads(tmp_path: Path, data: dict[str, Path]):
    from adain.model import AdaIN

    run, exported = tmp_path / "run", tmp_path / "model"
    config = _config(data, run)
    args = ["train", "--config", "smoke", "--content", str(data["content"]),
            "--style", str(data["style"]), "--encoder", str(data["encoder"]),
            "--base-channels", str(TINY_WIDTH), "-o", str(run), "--max-steps", str(STEPS),
            "--save-every", str(STEPS // 2), "--export", str(exported)]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(exported)
    assert load_toml(run / "config.toml") == config
    names = [f"ckpt_{STEPS // 2:06d}.pt", f"ckpt_{STEPS:06d}.pt", "latest.pt"]
    assert sorted(p.name for p in run.glob("*.pt")) == names
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    state = load_checkpoint(run / "latest.pt")
    assert state["step"] == STEPS and state["config"] == asdict(config)
    assert state["data"]["skipped"] == 2  # the corrupt file and the 2-pixel image
    assert state["data"]["content_images"] == N_IMAGES + 2
    assert records[-1]["skipped"] == 2

    # The loss on one fixed batch: untrained decoder (the run's own seeded init) vs trained.
    model = AdaIN.from_pretrained(str(exported))
    assert model.encoder.depth == "relu4_1"
    content = torch.cat([smooth_image(s, 32, 32) for s in range(4)])
    style = torch.cat([smooth_image(s, 32, 32) for s in range(100, 104)])
    torch.manual_seed(config.seed)
    from adain.decoder import Decoder

    untrained = Decoder(TINY_WIDTH)
    with torch.no_grad():
        before = compute_losses(model.encoder, untrained, content, style, config)[0]
        after = compute_losses(model.encoder, model.decoder, content, style, config)[0]
    totals = [r["total"] for r in records]
    assert sum(totals[-3:]) / 3 < TRAIN_RATIO * totals[0], f"training losses {totals}"
    assert after < LOSS_RATIO * before, f"loss {before:.4g} -> {after:.4g}"
    card = (exported / "README.md").read_text()
    assert "## Resolved training config" in card and f"max_steps = {STEPS}" in card
    assert "Skipped as unreadable or smaller than 16 px: 2" in card
    with torch.no_grad():
        out = model(content[:1], style[:1])
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()

    # Resume equivalence: STEPS/2 steps, then --resume latest to STEPS == STEPS in one go. The
    # encoder folder is gone by then: a resumed run takes its loss network from the checkpoint.
    half, encoder = tmp_path / "half", tmp_path / "encoder-copy"
    shutil.copytree(data["encoder"], encoder)
    fit(_config(data, half, max_steps=STEPS // 2, encoder=str(encoder)))
    shutil.rmtree(encoder)
    with pytest.raises(ResumeError, match=r"^lr 0.001 differs from the run's lr 0.002 \("):
        fit(_config(data, half, resume="latest", encoder=str(encoder), lr=1e-3))
    resumed = load_checkpoint(fit(_config(data, half, resume="latest", encoder=str(encoder))))
    for part in ("decoder", "encoder"):
        for key, value in state[part].items():
            assert torch.equal(resumed[part][key], value), f"{part}.{key} differs after resume"
    for index, tensors in state["optimizer"]["state"].items():
        for name, value in tensors.items():
            assert torch.equal(resumed["optimizer"]["state"][index][name], value), name
    assert resumed["scheduler"] == state["scheduler"] and resumed["step"] == STEPS
    assert resumed["losses"] == state["losses"]


def _different(value: object) -> object:
    """A value of the same type as ``value`` that is not equal to it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    return [*value, "x"]  # type: ignore[misc]


def test_resume_may_change_only_run_length_reporting_and_machine_settings():
    # The decision, spelt out: how far the run goes, how often it reports, what the machine
    # can do; never the data, the model, the optimiser, the losses or the seed.
    assert RESUME_MAY_CHANGE == {
        "max_steps", "save_every", "log_every", "sample_every", "num_workers",
        "mixed_precision", "output", "resume",
        "eval_every", "eval_content", "eval_style", "eval_size",
    }  # fmt: skip
    recorded = TrainConfig(content=["photos"], style=["paintings"], resume="latest")
    for field in fields(TrainConfig):
        value = _different(getattr(recorded, field.name))
        given = [(field.name, "--the-option VALUE", value)]
        if field.name in RESUME_MAY_CHANGE:
            assert getattr(resumed(recorded, "run/latest.pt", given), field.name) == value
        else:
            with pytest.raises(ResumeError) as error:
                resumed(recorded, "run/latest.pt", given)
            shown = toml_value(getattr(recorded, field.name))
            assert str(error.value) == (
                f"--the-option VALUE differs from the run's {field.name} {shown} "
                "(run/latest.pt): drop it or start a new --output"
            )
    # Agreeing values pass, and the highest-precedence spelling of a key is the one checked.
    given = [
        ("lr", "lr = 0.5 in x.toml", 0.5),
        ("lr", "--lr 0.0001", 1e-4),
        ("seed", "--seed 0", 0),
    ]
    assert resumed(recorded, "run/latest.pt", given) == recorded


def _smoke(args: list[str]) -> Result:
    """``python -m train`` with the README's smoke preset (read from the checkout)."""
    config = str(REPO / "train" / "configs" / "smoke.toml")
    return CliRunner().invoke(_app(), ["train", "--config", config, *args])


def _readme(args: list[str]) -> Result:
    """``python -m train ARGS`` in-process (``adain train`` mounts the same app)."""
    return CliRunner().invoke(_app(), ["train", *args])


def test_readme_smoke_line_runs_offline_and_resume_needs_only_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The README's smoke line, from a folder with my_photos/ and my_paintings/: no --encoder or
    # --base-channels (smoke.toml picks the tiny random encoder), and the Hub is a closed port.
    monkeypatch.chdir(tmp_path)
    for seed in range(4):
        save_image(smooth_image(seed, 40, 48)[0], Path("my_photos") / f"{seed}.png")
        save_image(smooth_image(100 + seed, 48, 40)[0], Path("my_paintings") / f"{seed}.png")
    smoke = ["--content", "my_photos/", "--style", "my_paintings/", "--output", "runs/smoke"]
    result = _smoke([*smoke, "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    run = Path("runs/smoke")
    state = load_checkpoint(run / "latest.pt")
    assert state["step"] == 2
    assert (state["config"]["encoder"], state["config"]["base_channels"]) == ("random", 8)
    assert (run / "model" / "config.json").is_file()

    # Continue with --output alone (and the one change wanted): the recorded config does the rest.
    result = _readme(["--output", "runs/smoke", "--resume", "latest", "--set", "max_steps=4"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run / "latest.pt")
    assert state["step"] == 4
    assert state["config"]["content"] == ["my_photos/"] and state["config"]["lr"] == 2e-3
    assert load_toml(run / "config.toml") == override(TrainConfig(), state["config"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]

    # Options given again that differ from the run: one line naming the option and both values.
    checkpoint = Path("runs/smoke/latest.pt")
    paper = REPO / "train" / "configs" / "paper.toml"
    differing = [  # (options given again, how the error spells them, the run's value)
        ("--base-channels 64", "--base-channels 64", "base_channels 8"),
        ("--set lr=1e-3", "--set lr=0.001", "lr 0.002"),
        ("--content other/", "--content other/", 'content ["my_photos/"]'),
        (f"--config {paper}", f"load_size = 512 in {paper}", "load_size 48"),
    ]
    for options, spelt, recorded in differing:
        result = _readme(["--output", "runs/smoke", "--resume", "latest", *options.split()])
        assert result.exit_code == 1, result.output
        assert result.output == (
            f"error: {spelt} differs from the run's {recorded} ({checkpoint}): "
            "drop it or start a new --output\n"
        )
    assert load_checkpoint(checkpoint)["step"] == 4  # nothing was trained or rewritten
    assert load_toml(run / "config.toml").max_steps == 4

    # Agreeing options (the whole smoke line again) and changes the run may take work.
    again = ["--base-channels", "8", "--max-steps", "5", "--log-every", "5", "--num-workers", "0"]
    result = _smoke([*smoke, "--resume", "latest", *again, "--mixed-precision", "no"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "latest.pt")["step"] == 5

    # Nothing to resume is an error, never a silent fresh start: a run that died before its
    # first checkpoint (only its config.toml) is started again without --resume.
    died = Path("runs/died")
    died.mkdir()
    shutil.copy(run / "config.toml", died / "config.toml")
    result = _readme(["--output", str(died), "--resume", "latest", "--max-steps", "1"])
    assert result.exit_code == 1
    assert result.output == (
        "error: --resume latest: nothing to resume in runs/died (no checkpoint, only a "
        "config.toml: the run stopped before its first save); start the run without --resume "
        "(with --overwrite if the folder holds a run)\n"
    )
    assert sorted(p.name for p in died.iterdir()) == ["config.toml"]
    result = _readme(["--output", "runs/none", "--resume", "latest"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: --resume latest: nothing to resume in runs/none (no such folder); "
    )
    assert not Path("runs/none").exists()


def test_resume_path_errors_and_encoder_width_mismatch(tmp_path: Path, data: dict[str, Path]):
    with pytest.raises(ValueError, match="no such checkpoint"):
        fit(_config(data, tmp_path / "run", resume=str(tmp_path / "nope.pt")))
    with pytest.raises(ValueError, match="has VGG width 8 but base_channels is 16"):
        fit(_config(data, tmp_path / "run", base_channels=16))


def test_encoder_from_original_pth_matches_its_weights(tmp_path: Path):
    from train.encoders import build_encoder

    vgg, _ = seeded_original(TINY_WIDTH)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(vgg.state_dict(), path)
    encoder = build_encoder(str(path), TINY_WIDTH)
    assert torch.equal(encoder.preprocess.weight, vgg[0].weight)
    assert torch.equal(encoder.conv4_1.weight, vgg[29].weight)  # index 29 is conv4_1
    assert not any(p.requires_grad for p in encoder.parameters())
    random = build_encoder("random", TINY_WIDTH)
    assert torch.equal(random.conv1_1.weight, build_encoder("random", TINY_WIDTH).conv1_1.weight)


def test_sigterm_mid_run_leaves_a_loadable_checkpoint(tmp_path: Path, data: dict[str, Path]):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "train", "--config", "smoke",
               "--content", str(data["content"]), "--style", str(data["style"]),
               "--encoder", str(data["encoder"]), "--base-channels", str(TINY_WIDTH),
               "-o", str(run), "--max-steps", "100000", "--save-every", "0"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120  # importing torch alone takes seconds on a loaded machine
    try:
        while not (metrics.exists() and metrics.read_text().strip()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no training step within 120 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM == 143, stderr
    state = load_checkpoint(run / "latest.pt")
    assert 1 <= state["step"] < 100_000
    checkpoint = run / f"ckpt_{state['step']:06d}.pt"
    assert stderr.splitlines()[-1] == (
        f"stopped by SIGTERM at step {state['step']}: {checkpoint}; continue with --resume latest"
    )
    assert stdout == ""  # no model folder: the run did not finish
    assert not list(run.glob(".*tmp*"))  # no temporary files left behind


# Nothing lost: refusals, checksums, signals, logs, leftovers ------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A finished 4-step run: ckpt_000002.pt, ckpt_000004.pt, latest.pt, metrics of steps 1-4."""
    run = tmp_path_factory.mktemp("small") / "run"
    fit(_config(data, run, max_steps=4, save_every=2))
    return run


def _copy_run(small_run: Path, where: Path) -> Path:
    """A copy of ``small_run`` (latest.pt becomes a file of its own, as where links fail)."""
    return Path(shutil.copytree(small_run, where / "run"))


def _run_args(data: dict[str, Path], run: Path, *more: str) -> list[str]:
    return ["--config", "smoke", "--content", str(data["content"]), "--style", str(data["style"]),
            "--encoder", str(data["encoder"]), "--base-channels", str(TINY_WIDTH),
            "-o", str(run), *more]  # fmt: skip


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_folder_with_checkpoints_needs_resume_or_overwrite(
    tmp_path: Path, small_run: Path, data: dict[str, Path]
):
    run = _copy_run(small_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.glob("*.pt")}
    result = _readme(_run_args(data, run, "--max-steps", "2"))
    assert result.exit_code == 1
    assert result.output == (
        f"error: {run} holds a run's checkpoints: continue it with --resume latest, or start "
        "again with --overwrite (replaces that run's files)\n"
    )
    assert {p.name: p.read_bytes() for p in run.glob("*.pt")} == before  # nothing rewritten
    result = _readme([*_run_args(data, run), "--resume", "latest", "--overwrite"])
    assert result.exit_code == 1
    assert "--overwrite starts the run again from step 0: drop it or --resume" in result.output

    # --overwrite replaces the run's own files only: a file of the user's, even one named like
    # a checkpoint, stays.
    (run / "ckpt_best.pt").write_bytes(b"mine")
    (run / "notes.txt").write_text("mine")
    result = _readme(_run_args(data, run, "--max-steps", "1", "--overwrite"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.glob("*.pt")) == [
        "ckpt_000001.pt",
        "ckpt_best.pt",
        "latest.pt",
    ]
    assert (run / "notes.txt").read_text() == "mine"
    assert load_checkpoint(run / "latest.pt")["step"] == 1
    assert _steps(run) == [1]
    assert load_toml(run / "config.toml").max_steps == 1
    assert (run / "model" / "README.md").read_text().count("Steps: 1 of 1")


def test_resume_latest_without_latest_pt_names_the_checkpoints_there(
    tmp_path: Path, small_run: Path
):
    run = _copy_run(small_run, tmp_path)
    (run / "latest.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = _readme(["--output", str(run), "--resume", "latest", "--max-steps", "6"])
    assert result.exit_code == 1
    assert result.output == (
        f"error: --resume latest: no latest.pt in {run}, which holds ckpt_000004.pt, "
        f"ckpt_000002.pt: pick one with --resume {run / 'ckpt_000004.pt'}\n"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _flip_to_nan(path: Path, tensor: torch.Tensor) -> None:
    """Overwrite the first element of ``tensor``'s bytes inside ``path`` with a float32 NaN."""
    raw = path.read_bytes()
    at = raw.find(tensor.contiguous().numpy().tobytes())
    assert at > 0, "tensor bytes not found in the file"
    path.write_bytes(raw[:at] + b"\xff\xff\xff\x7f" + raw[at + 4 :])


def test_a_corrupt_checkpoint_is_refused_naming_the_newest_intact_one(
    tmp_path: Path, small_run: Path
):
    run = _copy_run(small_run, tmp_path)
    weight = load_checkpoint(run / "latest.pt")["decoder"]["conv1_1.weight"]
    _flip_to_nan(run / "latest.pt", weight)
    # torch.load alone takes it: the NaN would train on and be exported.
    flipped = torch.load(run / "latest.pt", weights_only=True)
    assert torch.isnan(flipped["decoder"]["conv1_1.weight"]).any()
    result = _readme(["--output", str(run), "--resume", "latest", "--max-steps", "6"])
    assert result.exit_code == 1
    intact = run / "ckpt_000004.pt"
    assert result.output == (
        f"error: {run / 'latest.pt'}: corrupt: its contents do not match the checksum saved "
        f"with them; the newest intact checkpoint is {intact}: use --resume {intact}\n"
    )
    _flip_to_nan(intact, weight)
    with pytest.raises(ValueError, match=r"the newest intact checkpoint is .*ckpt_000002.pt"):
        load_checkpoint(run / "latest.pt")
    from train.export import export

    with pytest.raises(ValueError, match="ckpt_000004.pt: corrupt"):
        export(intact, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_non_finite_loss_stops_the_run_without_saving(
    tmp_path: Path, data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    import train.step

    calls = []
    compute = train.step.compute_losses

    def nan_at_step_3(*args: object, **kwargs: object) -> object:
        loss, parts, output = compute(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(1)
        return (loss * float("nan") if len(calls) == 3 else loss), parts, output

    monkeypatch.setattr(train.step, "compute_losses", nan_at_step_3)  # train_step looks it up there
    run = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        fit(_config(data, run, max_steps=4, save_every=1))
    assert str(error.value) == (
        "step 3: non-finite loss (nan); the run stopped there without saving it "
        f"(the last checkpoint is {run / 'ckpt_000002.pt'})"
    )
    assert sorted(p.name for p in run.glob("*.pt")) == ["ckpt_000001.pt", "ckpt_000002.pt",
                                                        "latest.pt"]  # fmt: skip
    state = load_checkpoint(run / "latest.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())


def test_sigint_saves_and_exits_130(
    tmp_path: Path, data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    import train.loop

    step = train.loop.train_step
    calls = []

    def interrupted_at_step_2(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, through the run's own handler
        return step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train.loop, "train_step", interrupted_at_step_2)
    run, handler = tmp_path / "run", signal.getsignal(signal.SIGINT)
    result = _readme(_run_args(data, run, "--max-steps", "6", "--save-every", "0"))
    assert result.exit_code == 128 + signal.SIGINT == 130, result.output
    assert result.stderr.splitlines()[-1] == (  # after the progress bar
        f"stopped by SIGINT at step 2: {run / 'ckpt_000002.pt'}; continue with --resume latest"
    )
    assert load_checkpoint(run / "latest.pt")["step"] == 2
    assert not (run / "model").exists()
    assert signal.getsignal(signal.SIGINT) == handler  # the one before the run is back


def test_metrics_hold_each_step_once_after_a_resume(tmp_path: Path, small_run: Path, data):
    run = _copy_run(small_run, tmp_path)
    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 5, "total": 1.0}\n{"step": 6, "tot')  # died after step 6 began
    resumed = fit(_config(data, run, max_steps=5, resume=str(run / "ckpt_000002.pt")))
    assert load_checkpoint(resumed)["step"] == 5
    assert _steps(run) == [1, 2, 3, 4, 5]


def test_a_start_removes_the_temporary_files_a_killed_run_left(
    tmp_path: Path, small_run: Path, data: dict[str, Path]
):
    run = _copy_run(small_run, tmp_path)
    leftovers = [".ckpt_000006.pt.tmp-4242", ".latest.pt.tmp-4242", ".metrics.jsonl.tmp-17"]
    others = [".ckpt_000006.pt.tmp-mine", "ckpt_000006.pt.tmp-4242", ".notes.tmp-1"]
    for name in leftovers + others:
        (run / name).write_bytes(b"partial")
    fit(_config(data, run, resume="latest"))  # at max_steps already: starts, trains nothing
    assert sorted(p.name for p in run.iterdir() if "tmp" in p.name) == sorted(others)


@pytest.mark.slow  # a second torch start-up in a subprocess: 6-15 s on 2 cores
def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, data: dict[str, Path]
):
    import random

    steps, kill_after = 8, random.randint(3, 6)  # after step 3: ckpt_000002.pt is saved
    config = _config(data, tmp_path / "whole", max_steps=steps, save_every=2)
    whole = load_checkpoint(fit(config))
    run = tmp_path / "killed"
    # A slow step (0.1 s) so that the kill lands mid-run, wherever the loop is (mid-save too).
    code = (
        "import sys, time, train.loop as loop; step = loop.train_step; "
        "loop.train_step = lambda *a, **k: (time.sleep(0.1), step(*a, **k))[1]; "
        "from train.cli import main; sys.argv[0] = 'train'; main()"
    )
    command = [sys.executable, "-c", code, *_run_args(data, run, "--max-steps", str(steps),
                                                      "--save-every", "2")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        metrics = run / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= kill_after):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no step {kill_after} within 120 s"
            time.sleep(0.02)
        process.kill()
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    killed_at = max(_steps(run))
    resumed = load_checkpoint(fit(override(config, {"output": str(run), "resume": "latest"})))
    assert resumed["step"] == steps
    for key, value in whole["decoder"].items():
        assert torch.equal(resumed["decoder"][key], value), f"{key} (killed after {killed_at})"
    assert _steps(run) == list(range(1, steps + 1))
    assert not [p for p in run.iterdir() if ".tmp-" in p.name]


def test_cli_module_is_light_and_mounted_in_adain():
    code = (
        "import sys; from typer.testing import CliRunner; import adain.cli; "
        "result = CliRunner().invoke(adain.cli.app, ['train', '--help']); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(result.output)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--resume" in done.stdout and "vgg_normalised" in done.stdout
