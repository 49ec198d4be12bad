"""The README's fresh-machine commands stay true: CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_the_two_commands():
    setup, tests = _readme_commands()[:2]
    assert setup.startswith("python3 -m venv .venv") and "adain stylize" in setup
    assert tests.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands()[1].split("&&")[-1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines, f"{test_command!r} is not a line of .ci/run"


def test_readme_main_job_inputs_exist():
    setup = _readme_commands()[0]
    words = setup.split()
    for flag_value in (words[words.index("stylize") + 1], words[words.index("--style") + 1]):
        assert (ROOT / flag_value).is_file(), f"{flag_value} named in the README is missing"
