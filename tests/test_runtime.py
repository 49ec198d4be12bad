"""Speed paths: each stays within its stated tolerance of eager fp32; clean fallbacks."""

from __future__ import annotations

import sys

import pytest
import torch

from adain.encoder import CONTENT_LAYER
from adain.engine.runner import TOLERANCE, Runner, check_precision, tune_allocator
from tests.conftest import make_model, smooth_image


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions: one thread avoids OpenMP spin-waits on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _eager(model, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.decode(model.encode(image, (CONTENT_LAYER,))[CONTENT_LAYER])


def _round_trip(runner: Runner, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return runner.decode(runner.encode(image))


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    diff = (actual.float().cpu() - expected).abs()
    assert diff.max() <= tolerance, f"max diff {diff.max():.2e} (mean {diff.mean():.2e})"


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [("fp32", {"channels_last": False}), ("channels_last", {"channels_last": True}),
     ("bf16", {"precision": "bf16"})],
)  # fmt: skip
def test_cpu_paths_match_eager_fp32(path, kwargs):
    image = smooth_image(3, 48, 40)
    expected = _eager(make_model(), image)
    runner = Runner(make_model(), "cpu", **kwargs)
    actual = _round_trip(runner, image)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    _assert_within(actual, expected, TOLERANCE[path])


def test_runner_keeps_state_dict_keys():
    model = make_model()
    keys = list(model.state_dict())
    Runner(model, "cpu", channels_last=True, compile=False)
    assert list(model.state_dict()) == keys
    assert model.encoder.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    image = smooth_image(4, 32, 32)
    expected = _eager(make_model(), image)
    runner = Runner(make_model(), "cpu", compile=True)
    with caplog.at_level("WARNING", logger="adain.engine.runner"):
        actual = _round_trip(runner, image)
    assert not runner.compiled
    assert "torch.compile failed (no C++ compiler); running eagerly" in caplog.text
    _assert_within(actual, expected, TOLERANCE["fp32"])


@pytest.mark.slow
def test_compiled_path_matches_eager_fp32():
    # ~1 minute of compilation on 2 CPU cores.
    image = smooth_image(5, 32, 32)
    expected = _eager(make_model(), image)
    runner = Runner(make_model(), "cpu", compile=True)
    actual = _round_trip(runner, image)
    assert runner.compiled
    _assert_within(actual, expected, TOLERANCE["compile"])


def test_precision_checks():
    assert check_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision 'fp16' needs a GPU"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        check_precision("int8", torch.device("cpu"))


def test_tune_allocator_applies_on_glibc():
    applied = tune_allocator()
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied is True
    else:
        assert applied is False


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_paths_match_eager_fp32(precision):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    image = smooth_image(6, 64, 64)
    expected = _eager(make_model(), image)
    runner = Runner(make_model(), "cuda", precision=precision)
    actual = _round_trip(runner, image.cuda())
    _assert_within(actual, expected, max(TOLERANCE[precision], 1e-3))


def test_long_lived_allocations_restore_the_tuned_heap(monkeypatch):
    from adain.engine import runner as runtime

    calls = []
    monkeypatch.setattr(runtime, "_mallopt", lambda param, value: calls.append((param, value)))
    with pytest.raises(RuntimeError), runtime.long_lived_allocations():
        assert calls == [(runtime._M_MMAP_MAX, runtime._DEFAULT_MMAP_MAX)]
        raise RuntimeError("allocation failed")
    # mmap for large blocks again inside, and back to the heap afterwards, even on errors.
    assert calls == [(runtime._M_MMAP_MAX, runtime._DEFAULT_MMAP_MAX), (runtime._M_MMAP_MAX, 0)]
