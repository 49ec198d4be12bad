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

    # A run that died before its first checkpoint restarts from its config.toml.
    died = Path("runs/died")
    died.mkdir()
    shutil.copy(run / "config.toml", died / "config.toml")
    result = _readme(["--output", str(died), "--resume", "latest", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(died / "latest.pt")
    assert state["step"] == 1 and state["config"]["output"] == str(died)
    result = _readme(["--output", "runs/none", "--resume", "latest"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --resume latest: nothing to resume in runs/none (no latest.pt, no config.toml); "
        "a new run there needs --content and --style"
    )


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
    assert process.returncode == 0, stderr
    assert "stopped at step" in stdout and "--resume latest" in stdout
    state = load_checkpoint(run / "latest.pt")
    assert 1 <= state["step"] < 100_000
    assert not list(run.glob(".*tmp*"))  # no temporary files left behind


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
