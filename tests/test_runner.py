"""The runner: each path stays within its stated tolerance of eager fp32, works on its own copies
of the weights (the model is never changed), and falls back cleanly."""

from __future__ import annotations

import pytest
import torch

import adain.engine.heap
from adain.architecture import CONTENT_LAYER
from adain.engine.precision import TOLERANCE, check_precision
from adain.engine.runner import Runner
from tests.conftest import make_model, smooth_image


def _runner(model, device="cpu", **kwargs) -> Runner:
    return Runner(model.encoder, model.decoder, model.eps, device, **kwargs)


def _eager(model, image: torch.Tensor) -> torch.Tensor:
    # The modules' whole-map walks in fp32, independent of any runner.
    with torch.inference_mode():
        return model.decoder(model.encoder(image, (CONTENT_LAYER,))[CONTENT_LAYER])


def _round_trip(runner: Runner, image: torch.Tensor, streamed: bool = False) -> torch.Tensor:
    with torch.inference_mode():
        if streamed:
            feats = runner.encoder_stream().push(image, last=True)
            return runner.decoder_stream().push(feats, last=True)
        return runner.decode(runner.encode(image))


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    diff = (actual.float().cpu() - expected).abs()
    assert diff.max() <= tolerance, f"max diff {diff.max():.2e} (mean {diff.mean():.2e})"


def _snapshot(model) -> dict[str, tuple]:
    return {
        name: (
            tensor.dtype,
            tensor.device,
            tensor.stride(),
            tensor.requires_grad,
            tensor.detach().clone(),
        )
        for name, tensor in model.state_dict(keep_vars=True).items()
    }


def _assert_unchanged(model, before: dict[str, tuple]) -> None:
    after = _snapshot(model)
    assert list(after) == list(before)
    for name, (dtype, device, stride, requires_grad, values) in before.items():
        assert after[name][:4] == (dtype, device, stride, requires_grad), name
        assert torch.equal(after[name][4], values), name


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("path", "kwargs"),
    [("fp32", {"channels_last": False}), ("channels_last", {"channels_last": True}),
     ("bf16", {"precision": "bf16"})],
)  # fmt: skip
def test_cpu_paths_match_eager_fp32(path, kwargs, streamed):
    image = smooth_image(3, 48, 40)
    model = make_model()
    expected = _eager(model, image)
    actual = _round_trip(_runner(model, **kwargs), image, streamed)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    _assert_within(actual, expected, TOLERANCE[path])


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_runner_does_not_change_the_model(channels_last):
    # Not its layout, dtype, device, gradient flags or values, whatever the runner's layout.
    model = make_model()
    before = _snapshot(model)
    runner = _runner(model, channels_last=channels_last)
    image = smooth_image(4, 32, 40)
    _round_trip(runner, image)
    _round_trip(runner, image, streamed=True)
    _assert_unchanged(model, before)
    assert not model.encoder.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    weight = runner.encoder_params["conv1_1"][0]
    assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert not weight.requires_grad  # detached: the runner's calls record no graph


def _runs_the_current_weights(model, image: torch.Tensor) -> None:
    expected = _eager(model, image)
    for channels_last in (False, True):
        runner = _runner(model, channels_last=channels_last)
        for streamed in (False, True):
            actual = _round_trip(runner, image, streamed)
            _assert_within(actual, expected, TOLERANCE["channels_last"])


def test_a_runner_built_after_the_weights_change_uses_the_new_weights():
    # However runners prepare (and keep) their copies, they follow the model's weights.
    model = make_model()
    image = smooth_image(7, 32, 40)
    _runs_the_current_weights(model, image)
    with torch.no_grad():  # changed in place
        model.decoder.conv1_1.weight.mul_(0.5)
        model.encoder.conv3_1.bias.add_(0.1)
    _runs_the_current_weights(model, image)
    model.load_state_dict(make_model(seed=1).state_dict())  # copied in
    _runs_the_current_weights(model, image)
    weight = model.decoder.conv2_1.weight
    model.decoder.conv2_1.weight = torch.nn.Parameter(weight.detach().flip(0))  # replaced
    _runs_the_current_weights(model, image)


def test_a_differentiable_runner_uses_the_modules_own_weights():
    model = make_model()
    runner = _runner(model, device=None, differentiable=True)
    assert runner.encoder_params["conv1_1"][0] is model.encoder.conv1_1.weight
    assert runner.decoder_params["conv1_1"][0] is model.decoder.conv1_1.weight
    assert not runner.channels_last and not runner.streams(1)
    image = smooth_image(6, 32, 32)
    out = runner.decode(runner.encode(image))
    _assert_within(out.detach(), _eager(model, image), TOLERANCE["fp32"])
    out.square().mean().backward()
    assert model.decoder.conv1_1.weight.grad is not None
    assert model.decoder.conv1_1.weight.grad.abs().sum() > 0
    assert model.encoder.conv1_1.weight.grad is None  # the encoder stays frozen


def test_which_runs_stream():
    model = make_model()
    cpu = _runner(model)
    # The CPU streams even one piece (ReLU folded into padding, Winograd); strips always stream.
    assert cpu.channels_last and cpu.streams(1) and cpu.streams(3)
    cpu.compiled = True  # a compiled runner walks a single piece whole
    assert not cpu.streams(1) and cpu.streams(3)


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    image = smooth_image(4, 32, 32)
    model = make_model()
    expected = _eager(model, image)
    runner = _runner(model, compile=True)
    assert runner.compiled
    with caplog.at_level("WARNING", logger="adain.engine.runner"):
        actual = _round_trip(runner, image)
    assert not runner.compiled
    assert "torch.compile failed (no C++ compiler); running eagerly" in caplog.text
    _assert_within(actual, expected, TOLERANCE["fp32"])


@pytest.mark.slow
def test_compiled_path_matches_eager_fp32():
    # ~1 minute of compilation on 2 CPU cores.
    image = smooth_image(5, 32, 32)
    model = make_model()
    expected = _eager(model, image)
    runner = _runner(model, compile=True)
    actual = _round_trip(runner, image)
    assert runner.compiled
    _assert_within(actual, expected, TOLERANCE["compile"])


def test_precision_checks():
    assert check_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision 'fp16' needs a GPU"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        check_precision("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision 'fp16' needs a GPU"):
        _runner(make_model(), precision="fp16")


class _FakeGlibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_a_cpu_session_reuses_the_heap_and_a_differentiable_one_does_not(monkeypatch):
    glibc = _FakeGlibc()
    monkeypatch.setattr(adain.engine.heap, "_glibc", glibc)
    model = make_model()
    with _runner(model, differentiable=True).session():
        assert glibc.calls == []
    with _runner(model).session():
        assert adain.engine.heap._depth == 1
        assert ("mallopt", adain.engine.heap._M_MMAP_MAX, 0) in glibc.calls
    assert adain.engine.heap._depth == 0
    assert glibc.calls[-1] == ("malloc_trim", 0)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_paths_match_eager_fp32(precision):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    image = smooth_image(6, 64, 64)
    model = make_model()
    expected = _eager(model, image)
    before = _snapshot(model)
    runner = _runner(model, "cuda", precision=precision)
    # A GPU walks a single piece whole (its own convolution algorithms); strips stream.
    assert not runner.streams(1) and runner.streams(2)
    assert runner.channels_last == (precision != "fp32")  # tensor cores want NHWC
    actual = _round_trip(runner, image.cuda())
    _assert_within(actual, expected, max(TOLERANCE[precision], 1e-3))
    streamed = _round_trip(runner, image, streamed=True)  # rows move over strip by strip
    _assert_within(streamed, expected, max(TOLERANCE[precision], 1e-3))
    # The model stays on the CPU, unchanged: the runner ran on copies of its weights.
    _assert_unchanged(model, before)
