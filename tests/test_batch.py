"""Batches (adain/batch/): every input checked before the first write, ``--skip-existing``
finishes only what is missing, and the temporary files of a killed run are cleaned up.

Issue 16 ("Nothing lost"), cases 8 and 9. In-process runs use ``CliRunner`` on a width-8 model
saved to ``tmp_path``; the SIGKILL test runs ``python -m adain`` in a subprocess (marked slow).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_error_line, smooth_image
from PIL import Image
from typer.testing import CliRunner

import adain.batch
import adain.batch.planning
from adain.batch import BatchConfig, plan
from adain.cli import app
from adain.image import save_image
from adain.model import MIN_SIDE
from adain.outputs import TEMPORARY_EXTRA_BYTES, temporary_file_of, write_atomically

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture
def work(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three contents (one JPEG), two styles; the cwd is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    save_image(smooth_image(1, 40, 56), tmp_path / "c" / "a.png")
    save_image(smooth_image(3, 32, 32), tmp_path / "c" / "b.jpg", quality=95)
    save_image(smooth_image(5, 36, 28), tmp_path / "c" / "d.png")
    save_image(smooth_image(2, 48, 40), tmp_path / "s" / "x.png")
    save_image(smooth_image(4, 32, 48), tmp_path / "s" / "y.png")
    return tmp_path


def model_args(work: Path) -> list[str]:
    return ["--model", str(work / "tiny-model"), "--device", "cpu"]


# 8a. Every input checked before the first write -------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still reads


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 16):  # inside the pixel data
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "target"),
    [
        (_truncate, "c/b.jpg"),  # a content after a good one: used to stop the run midway
        (_flip_bytes, "c/d.png"),  # the last content
        (_truncate, "s/y.png"),  # a style
    ],
    ids=["truncated-jpeg", "byte-flipped-png", "truncated-style"],
)
def test_a_corrupt_input_is_found_before_any_output(work, damage, target):
    damage(work / target)
    result = invoke("stylize", "c", "-s", "s", "-o", "out", *model_args(work))
    assert result.exit_code == 1
    assert target in one_error_line(result)
    assert not (work / "out").exists()


def test_a_corrupt_mask_is_found_before_any_output(work):
    save_image(smooth_image(6, 20, 20), work / "m.png")
    _truncate(work / "m.png")
    result = invoke("stylize", "c", "-s", "s/x.png", "--mask", "m.png", "-o", "out",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 1 and "m.png" in one_error_line(result)
    assert not (work / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["c", "tiny.png", "-s", "s/x.png"], "content tiny.png is 1x1 px; AdaIN needs at least"),
        (["c", "-s", "s/x.png", "-s", "tiny.png"], "style tiny.png is 1x1 px"),
        (["c", "-s", "s/x.png", "--max-size", "8"], "(8x6 px resized); AdaIN needs at least"),
        (["c", "-s", "s", "--style-size", "4"], "style s/x.png is 40x48 px (4x5 px resized)"),
        (["c", "-s", "s", "--content-size", "9000"], "over the limit of"),
    ],
    ids=["tiny-content", "tiny-style", "max-size", "style-size", "over-max-pixels"],
)
def test_sizes_after_resizing_are_checked_before_any_output(work, args, message):
    Image.new("RGB", (1, 1), "red").save(work / "tiny.png")
    result = invoke("stylize", *args, "-o", "out", *model_args(work))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert message in line, line
    if "AdaIN needs" in message:
        assert f"at least {MIN_SIDE} px a side" in line
    assert not (work / "out").exists()


def test_min_side_is_the_models():
    assert adain.batch.MIN_SIDE == MIN_SIDE == 16


def test_an_over_long_output_name_is_found_before_any_output(work):
    limit = os.pathconf(work, "PC_NAME_MAX")
    stem = "k" * (limit - len(".png"))  # a valid input name ...
    (work / "long").mkdir()
    Image.new("RGB", (20, 20), "red").save(work / "long" / f"{stem}.png")  # not atomically: the
    # temporary name would be over the limit
    # ... whose output name (STEM_x.png) is over the limit: found before c/a.png's output.
    result = invoke("stylize", "c/a.png", "long", "-s", "s/x.png", "-o", "out", *model_args(work))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"out/{stem}_x.png: the file name is {limit + 2} bytes" in line
    assert "a shorter stem" in line and not (work / "out").exists()
    # One -o file: the fix is a shorter -o name.
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", f"{stem}.png", *model_args(work))
    assert "choose a shorter -o file name" in one_error_line(result)


def test_the_longest_output_name_leaves_room_for_its_temporary_file(work):
    limit = os.pathconf(work, "PC_NAME_MAX")
    extra = len(".") + len(".01234567.tmp")  # write_atomically's temporary name
    longest = "n" * (limit - extra - len(".png")) + ".png"
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", longest, *model_args(work))
    assert result.exit_code == 0, result.output
    too_long = "n" + longest
    result = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", too_long, *model_args(work))
    assert f"over the {limit - extra} bytes" in one_error_line(result)


def test_plan_decodes_each_input_once_and_writes_nothing(work, monkeypatch):
    decoded: list[Path] = []
    real = adain.batch.planning.load_image

    def load_image(path, *args, **kwargs):
        decoded.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(adain.batch.planning, "load_image", load_image)  # where plan() finds it
    # s/x.png is both a content and a style: decoded once.
    batch = plan(BatchConfig(contents=["c", "s/x.png"], styles=["s"], output=Path("out")))
    assert sorted(map(str, decoded)) == ["c/a.png", "c/b.jpg", "c/d.png", "s/x.png", "s/y.png"]
    assert len(batch.jobs) == 8 and not (work / "out").exists()


# 8b. --skip-existing finishes only what is missing ----------------------------------------------


def test_an_existing_output_suggests_skip_existing(work):
    args = ["stylize", "c", "-s", "s", "-o", "out", *model_args(work)]
    assert invoke(args[0], "c/a.png", *args[2:]).exit_code == 0
    before = files(work / "out")
    result = invoke(*args)
    assert result.exit_code == 1
    assert "out/a_x.png already exists: pass --skip-existing" in one_error_line(result)
    assert "--overwrite" in one_error_line(result)
    assert files(work / "out") == before
    result = invoke(*args, "--skip-existing", "--overwrite")
    assert "either --overwrite" in one_error_line(result) and "--skip-existing" in result.stderr
    assert files(work / "out") == before


def test_skip_existing_finishes_a_partial_run(work):
    args = ["stylize", "c", "-s", "s", "-o", "out", *model_args(work)]
    assert invoke("stylize", "c/a.png", "-s", "s", "-o", "out", *model_args(work)).exit_code == 0
    (work / "out" / "a_y.png").write_bytes(b"not even an image: kept as it is")
    before = files(work / "out")
    assert sorted(before) == ["a_x.png", "a_y.png"]

    result = invoke(*args, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["out/b_x.png", "out/b_y.png", "out/d_x.png", "out/d_y.png"]
    assert result.stderr.splitlines() == ["skipped out/a_x.png (exists)",
                                          "skipped out/a_y.png (exists)"]  # fmt: skip
    after = files(work / "out")
    assert {name: after[name] for name in before} == before  # byte-identical, never replaced
    assert len(after) == 6

    # The same outputs as one uninterrupted run.
    assert invoke("stylize", "c", "-s", "s", "-o", "full", *model_args(work)).exit_code == 0
    full = files(work / "full")
    assert {n: b for n, b in after.items() if n != "a_y.png"} == {
        n: b for n, b in full.items() if n != "a_y.png"
    }

    # Nothing left to do: every output skipped, the model not even loaded.
    result = invoke(*args[:-4], "--model", "no-such-model-dir", "--skip-existing", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["skipped"] for r in records] == [True] * 6
    assert records[0] == {"output": "out/a_x.png", "content": "c/a.png", "styles": ["s/x.png"],
                          "skipped": True}  # fmt: skip
    result = invoke(*args, "--skip-existing", "--quiet")
    assert result.exit_code == 0 and result.output == ""
    assert files(work / "out") == after


def test_skip_existing_json_records_written_and_skipped(work):
    common = ["-s", "s/x.png", "-o", "out", "--json", *model_args(work)]
    assert invoke("stylize", "c/b.jpg", *common).exit_code == 0
    result = invoke("stylize", "c", *common, "--skip-existing")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["output"]).name, r["skipped"]) for r in records] == [
        ("a_x.png", False), ("b_x.png", True), ("d_x.png", False),
    ]  # fmt: skip
    assert records[0]["width"] == 56


def test_skip_existing_does_not_decode_the_inputs_of_skipped_outputs(work):
    first = invoke("stylize", "c/b.jpg", "-s", "s/x.png", "-o", "out", *model_args(work))
    assert first.exit_code == 0, first.output
    _truncate(work / "c/b.jpg")  # only needed for out/b_x.png, which exists
    result = invoke("stylize", "c", "-s", "s/x.png", "-o", "out", "--skip-existing",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(files(work / "out")) == ["a_x.png", "b_x.png", "d_x.png"]


# 9. Temporary files of a killed run ---------------------------------------------------------------


def test_the_temporary_pattern_is_write_atomically_s(tmp_path):
    seen: list[str] = []

    def write(handle):
        seen.extend(p.name for p in tmp_path.iterdir())
        handle.write(b"x")

    write_atomically(tmp_path / "a_x.png", write)
    (name,) = seen
    assert temporary_file_of(name) == "a_x.png"
    assert temporary_file_of("a_x.png") is None and temporary_file_of(".a_x.png.xyz.tmp") is None
    assert len(name) == len("a_x.png") + TEMPORARY_EXTRA_BYTES


def test_stale_temporary_files_of_the_run_are_removed_look_alikes_kept(work):
    out = work / "out"
    out.mkdir()
    stale = [".a_x.png.0123abcd.tmp", ".b_y.png.ffffffff.tmp", ".d_x.png.00000000.tmp"]
    kept = [
        ".a_x.png.0123abcd.tmp.bak",  # not exactly the pattern
        ".a_x.png.0123ABCD.tmp",  # upper-case hex: not what write_atomically writes
        ".a_x.png.0123abc.tmp",  # 7 digits
        "a_x.png.0123abcd.tmp",  # no leading dot
        ".a_x.png.0123abcd.old",  # write_folder's, not write_atomically's
        ".a_x.jpg.0123abcd.tmp",  # another output's (a .jpg this run does not write)
        ".e_x.png.0123abcd.tmp",  # not an output of this run
        ".a_z.png.0123abcd.tmp",
        "notes.txt",
    ]
    for name in stale + kept:
        _left_over(out / name)
    (out / ".a_y.png.89abcdef.tmp").mkdir()  # a folder: never removed
    (out / ".b_x.png.89abcdef.tmp").symlink_to(work / "c" / "a.png")  # a link: never followed
    result = invoke("stylize", "c", "-s", "s", "-o", "out", *model_args(work))
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale)
    assert set(kept) | {".a_y.png.89abcdef.tmp", ".b_x.png.89abcdef.tmp"} <= names
    assert (work / "c" / "a.png").exists()
    assert len(names - set(kept)) == 6 + 2


def _left_over(path: Path) -> None:
    """A file as a killed run leaves it: written a minute ago, no writer holding its lock."""
    path.write_bytes(b"left over")
    os.utime(path, (time.time() - 60, time.time() - 60))


def test_a_concurrent_runs_temporary_file_is_not_removed(work):
    """Two runs into one folder: the second never deletes what the first is still writing."""
    out = work / "out"
    out.mkdir()
    live, dead = out / ".a_x.png.0123abcd.tmp", out / ".b_x.png.0123abcd.tmp"
    _left_over(live)
    _left_over(dead)
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as write_atomically holds it while writing
        result = invoke("stylize", "c", "-s", "s/x.png", "-o", "out", *model_args(work))
        assert result.exit_code == 0, result.output
        assert live.exists() and not dead.exists()
    _left_over(out / ".b_x.png.fedcba98.tmp")
    fresh = out / ".d_x.png.01234567.tmp"
    fresh.write_bytes(b"just created, not locked yet")
    result = invoke("stylize", "c", "-s", "s/x.png", "-o", "out", "--overwrite",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fresh.exists() and not live.exists()  # the writer is gone: its file is stale now


def test_planning_removes_nothing_and_skipped_outputs_keep_theirs(work):
    first = invoke("stylize", "c/a.png", "-s", "s/x.png", "-o", "out", *model_args(work))
    assert first.exit_code == 0, first.output
    (work / "out" / ".a_x.png.0123abcd.tmp").write_bytes(b"not this run's: a_x.png is kept")
    _left_over(work / "out" / ".b_x.png.0123abcd.tmp")
    config = BatchConfig(contents=["c"], styles=["s/x.png"], output=Path("out"), skip_existing=True)
    batch = plan(config)
    assert (work / "out" / ".b_x.png.0123abcd.tmp").exists()  # planning writes nothing
    assert [job.skip for job in batch.jobs] == [True, False, False]
    result = invoke("stylize", "c", "-s", "s/x.png", "-o", "out", "--skip-existing",
                    *model_args(work))  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (work / "out").iterdir())
    assert names == [".a_x.png.0123abcd.tmp", "a_x.png", "b_x.png", "d_x.png"]


@pytest.mark.slow
def test_sigkill_then_skip_existing_equals_an_uninterrupted_run(tmp_path):
    from adain.model import AdaIN

    AdaIN.with_random_weights(base_channels=8).save_pretrained(tmp_path / "model")
    for k in range(6):
        save_image(smooth_image(20 + k, 160, 192), tmp_path / "c" / f"img{k:02d}.png")
    save_image(smooth_image(30, 96, 96), tmp_path / "style.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def command(out: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "adain", "stylize", "c", "-s", "style.png", "-o", out,
                "--model", "model", "--device", "cpu", *extra]  # fmt: skip

    killed = tmp_path / "killed"
    process = subprocess.Popen(command("killed"), cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (killed.is_dir() and any(killed.glob("*.png"))):
            assert process.poll() is None, "the run ended before its first output"
            assert time.monotonic() < deadline, "no output within 120 s"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    written = sorted(p.name for p in killed.glob("*.png"))
    assert 1 <= len(written) < 6, written  # killed midway

    resumed = subprocess.run(command("killed", "--skip-existing"), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.splitlines() == [f"skipped killed/{name} (exists)" for name in written]
    full = subprocess.run(command("full"), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert full.returncode == 0, full.stderr
    expected = files(tmp_path / "full")
    assert sorted(expected) == [f"img{k:02d}_style.png" for k in range(6)]
    assert files(killed) == expected  # every output, byte for byte; no temporary file left
