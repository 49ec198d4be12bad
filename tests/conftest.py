"""Shared fixtures: small seeded models and images, and an isolated Hugging Face cache."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Before anything imports huggingface_hub (it reads these once, at import): no telemetry, and
# never the user's cache, token or endpoint. Fixtures below also give each test its own cache.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="adain-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ["HF_HUB_CACHE"] = os.path.join(os.environ["HF_HOME"], "hub")
os.environ["ADAIN_CACHE"] = os.path.join(os.environ["HF_HOME"], "adain")
# A closed loopback port: a test that forgets to start the stand-in Hub fails at once, locally,
# instead of reaching out to huggingface.co or GitHub.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
CLOSED_ORIGINAL_URLS = "http://127.0.0.1:9/vgg_normalised.pth http://127.0.0.1:9/decoder.pth"
os.environ["ADAIN_ORIGINAL_URLS"] = CLOSED_ORIGINAL_URLS
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.pop("ADAIN_MODEL", None)
os.environ.pop("HF_TOKEN", None)

# Width 8 instead of VGG's 64: the real architecture and code paths at 1/64 of the FLOPs.
TINY_WIDTH = 8


@pytest.fixture(autouse=True)
def _isolated_hub_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("ADAIN_CACHE", str(home / "adain"))
    monkeypatch.delenv("ADAIN_MODEL", raising=False)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test: the models and images here are tiny, so a second OpenMP
    thread only adds barrier waits (one 32 px width-8 forward measured 1.07 s with two threads
    and 0.018 s with one on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed: int = 0, width: int = TINY_WIDTH, depth: str = "relu5_1"):
    from adain.model import AdaIN

    torch.manual_seed(seed)
    model = AdaIN(encoder_depth=depth, base_channels=width).eval()
    # He initialisation keeps random activations alive through 13+9 convolutions (PyTorch's
    # default init shrinks them until the output is nearly constant, which makes weak tests).
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d) and not name.endswith("preprocess"):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.uniform_(module.bias, -0.1, 0.1)
        model.encoder.conv1_1.weight.mul_(1 / 64.0)  # the Caffe input spans +-128
    return model


@pytest.fixture
def tiny_model():
    """A seeded random AdaIN of width 8 (the full architecture, narrow)."""
    return make_model()


@pytest.fixture
def tiny_model_dir(tiny_model, tmp_path: Path) -> Path:
    """``tiny_model`` written with save_pretrained."""
    path = tmp_path / "tiny-model"
    tiny_model.save_pretrained(path)
    return path


def smooth_image(seed: int, height: int = 64, width: int = 64) -> torch.Tensor:
    """A seeded ``(1, 3, H, W)`` image in [0, 1] with structure at several scales."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=generator)
    fine = torch.rand(1, 3, height, width, generator=generator)
    up = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return (0.8 * up + 0.2 * fine).clamp(0, 1)


@pytest.fixture
def content() -> torch.Tensor:
    return smooth_image(1)


@pytest.fixture
def style() -> torch.Tensor:
    return smooth_image(2, 48, 56)


@pytest.fixture
def stand_in_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A loopback stand-in Hub (tests/hub_server.py) that the real huggingface_hub client uses.

    huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_CACHE`` once, at import, so in-process
    tests patch its ``constants``; the environment variables are for subprocesses.
    """
    from hub_server import StandInHub
    from huggingface_hub import constants

    server = StandInHub()
    template = f"{server.url}/{{repo_id}}/resolve/{{revision}}/{{filename}}"
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ADAIN_CACHE", str(tmp_path / "adain-cache"))
    monkeypatch.setenv("ADAIN_ORIGINAL_URLS", CLOSED_ORIGINAL_URLS)  # tests serve their own
    yield server
    server.stop()


def one_error_line(result) -> str:
    """The single ``error:`` line of an expected CLI failure: exit code 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
