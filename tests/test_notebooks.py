"""Every notebook runs top to bottom against a tiny local model, offline, in a fresh kernel.

The kernel is this interpreter (a kernel spec written to ``tmp_path``, so a ``python3`` spec the
machine may have registered elsewhere cannot shadow it), and every Jupyter, IPython, Matplotlib,
Hub and temporary-file path points into ``tmp_path``. ``ADAIN_NOTEBOOK_QUICK=1`` makes the
notebooks use small images and few optimisation or training steps. Most of the time is kernel
start-up and imports (torch, and for 03/04 its compiler stack, Accelerate and TensorBoard): about
40 s of CPU for the four notebooks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import make_model

ROOT = Path(__file__).parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_quickstart",
    "02_interpolation_masks_colour",
    "03_adain_vs_gatys",
    "04_training",
    "05_video",
]
KERNEL_NAME = "adain-pytest"
MAX_BYTES = 1_000_000  # issue 8: a notebook stays well under 1 MB
CELL_TIMEOUT_S = 300


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_notebooks_exist():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_small_and_without_outputs(path: Path):
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size} bytes; clear its outputs"
    cells = _read(path)["cells"]
    with_outputs = [
        i
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"])
    ]
    assert not with_outputs, f"{path.name}: cells {with_outputs} keep outputs; clear them"
    first_code = next(cell for cell in cells if cell["cell_type"] == "code")
    source = "".join(first_code["source"])
    assert "ADAIN_MODEL" in source and "using_colab" in source, (
        f"{path.name}: the first code cell must set MODEL from $ADAIN_MODEL and using_colab"
    )


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernel spec for this interpreter, a tiny model, and every write path in tmp_path."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "adain tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    model_dir = tmp_path / "tiny-model"
    make_model().save_pretrained(model_dir)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    settings = {
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        # jupyter_core 5 warns about its coming path change unless this is set.
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "TMPDIR": str(scratch),  # the notebooks write presets and runs under tempfile dirs
        "ADAIN_CACHE": str(tmp_path / "adain-cache"),
        "HF_HUB_OFFLINE": "1",
        # Tiny tensors: one thread is fastest, and avoids oversubscribing a shared CI machine.
        "OMP_NUM_THREADS": "1",
        "ADAIN_MODEL": str(model_dir),
        "ADAIN_NOTEBOOK_QUICK": "1",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return tmp_path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path: Path, kernel_env: Path):
    import nbformat
    from nbclient import NotebookClient

    if path.stem == "04_training":
        pytest.importorskip("accelerate", reason="needs the train extra: pip install '.[train]'")
    if path.stem == "05_video":
        pytest.importorskip("av", reason="needs the video extra: pip install '.[video]'")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        # Jupyter starts a notebook's kernel in the notebook's folder; so do we.
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # a cell that raises fails the test with its traceback
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name} produced errors: {errors}"
