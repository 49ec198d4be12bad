"""Evaluation: metrics against formulas written here, the metric networks loaded from stand-in
weight files (a folder and a stand-in Hub), ``adain evaluate`` end to end, and the training hook.

The stand-in networks have the real layouts: an AlexNet of widths 4-8 for LPIPS (widths are read
from the weights), and torchvision's Inception3 whose weights are views of one shared random
vector (a few MB on disk), so the loading code is exactly the one real weights go through.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_WIDTH, make_model, smooth_image
from typer.testing import CliRunner

from adain.cli import app
from adain.evaluation.feature_metrics import feature_metrics
from adain.evaluation.frechet import feature_distance, frechet_distance, gaussian_stats
from adain.evaluation.harness import EvalConfig, evaluate, format_table, read_pairs
from adain.evaluation.networks import LPIPS_SCALE, LPIPS_SHIFT
from adain.evaluation.weights import load_metric_networks

REPO = Path(__file__).resolve().parents[1]
CONTENTS = REPO / "examples" / "content"
STYLES = REPO / "examples" / "style"
# AlexNet's features: (torchvision index, kernel, stride, padding) of each convolution, and the
# ReLU outputs LPIPS taps (after convolutions 0..4); max pools (3, 2) follow convolutions 0 and 1.
ALEX_CONVS = ((0, 11, 4, 2), (3, 5, 1, 2), (6, 3, 1, 1), (8, 3, 1, 1), (10, 3, 1, 1))
STAND_IN_WIDTHS = (4, 6, 8, 6, 6)
runner = CliRunner()


# Stand-in weight files ------------------------------------------------------------------------


def stand_in_lpips() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A narrow AlexNet (torchvision keys) and lpips linear layers (lpips keys)."""
    generator = torch.Generator().manual_seed(7)
    backbone, linear, in_channels = {}, {}, 3
    for k, ((index, kernel, _, _), width) in enumerate(
        zip(ALEX_CONVS, STAND_IN_WIDTHS, strict=True)
    ):
        fan_in = in_channels * kernel * kernel
        shape = (width, in_channels, kernel, kernel)
        weight = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        backbone[f"features.{index}.weight"] = weight
        backbone[f"features.{index}.bias"] = torch.rand(width, generator=generator) * 0.1
        linear[f"lin{k}.model.1.weight"] = torch.rand(1, width, 1, 1, generator=generator)
        in_channels = width
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # ignored, as torchvision's classifier
    return backbone, linear


def stand_in_inception() -> dict[str, torch.Tensor]:
    """torchvision Inception3 weights as views of one random vector; batch-norm statistics
    scaled so activations neither vanish nor explode (He: var = fan_in / 2)."""
    from torchvision.models import Inception3

    with torch.device("meta"):
        shapes = {
            k: (v.shape, v.dtype)
            for k, v in Inception3(aux_logits=False, init_weights=False).state_dict().items()
        }
    base = torch.randn(1_600_000, generator=torch.Generator().manual_seed(3))
    state, fan_in = {}, {}
    for key, (shape, dtype) in shapes.items():
        if key.startswith("fc."):
            shape = (10, *shape[1:]) if key.endswith("weight") else (10,)  # any class count
        if dtype == torch.long:
            continue  # num_batches_tracked: optional, as in checkpoints saved without it
        elif key.endswith("conv.weight"):
            numel = math.prod(shape)
            state[key] = base[:numel].view(shape)
            fan_in[key.rsplit(".", 2)[0]] = numel // shape[0]
        elif key.endswith("running_var"):
            state[key] = torch.tensor([fan_in[key.rsplit(".", 2)[0]] / 2.0]).expand(shape)
        elif key.endswith("bn.weight"):
            state[key] = torch.ones(1).expand(shape)
        else:  # bn.bias, running_mean, fc
            state[key] = torch.zeros(1).expand(shape)
    return state


def save_stand_ins(folder: Path, lpips_format: str = "safetensors") -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    backbone, linear = stand_in_lpips()
    if lpips_format == "safetensors":
        save_file(backbone, str(folder / "lpips_alexnet.safetensors"))
        save_file(linear, str(folder / "lpips_alex.safetensors"))
    else:  # the published names and format
        torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
        torch.save(linear, folder / "alex.pth")
    torch.save(stand_in_inception(), folder / "art_inception.pth")
    return folder


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_stand_ins(tmp_path_factory.mktemp("metric-weights"))


@pytest.fixture(scope="module")
def networks(weights_dir: Path):
    return load_metric_networks([str(weights_dir)])


# Fréchet distance -----------------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    # Commuting covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2 + |mu1 - mu2|^2.
    expected = float((mu1 - mu2).square().sum() + (var1.sqrt() - var2.sqrt()).square().sum())
    assert expected == pytest.approx(1 + 6.25 + 4 + 1)
    got = frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_non_commuting_2x2_covariances():
    s1 = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    mu1 = torch.tensor([0.3, -0.1], dtype=torch.float64)
    mu2 = torch.tensor([-0.2, 0.4], dtype=torch.float64)
    # For 2x2 PSD matrices with real positive eigenvalues of the product P = S1 S2:
    # tr(P^(1/2)) = sqrt(tr(P) + 2 sqrt(det(P))).
    product = s1 @ s2
    trace_sqrt = math.sqrt(float(product.trace()) + 2 * math.sqrt(float(product.det())))
    expected = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace()) - 2 * trace_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        frechet_distance(mu2, s2, mu1, s1), rel=1e-10
    )


def test_feature_distance_uses_unbiased_statistics_and_is_zero_for_one_set():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(50, 4, generator=generator) * torch.tensor([1.0, 2.0, 0.5, 3.0])
    mean, cov = gaussian_stats(features)
    centred = features.double() - features.double().mean(0)
    torch.testing.assert_close(cov, centred.T @ centred / 49)
    torch.testing.assert_close(mean, features.double().mean(0))
    assert feature_distance(features, features) == pytest.approx(0.0, abs=1e-9)
    shifted = features + torch.tensor([1.0, 0.0, 0.0, 2.0])
    assert feature_distance(features, shifted) == pytest.approx(5.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        gaussian_stats(features[:1])


@pytest.mark.parametrize("sizes", [(5, 7), (40, 30)])
def test_feature_distance_from_samples_equals_the_covariance_route(sizes: tuple[int, int]):
    # 5 x 7 samples of 16 dimensions take the sample route, 40 x 30 the covariance route.
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(sizes[0], 16, generator=generator)
    b = torch.randn(sizes[1], 16, generator=generator) * 1.5 + 0.3
    expected = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    # rel 1e-6: with N < D the covariance route takes square roots of round-off eigenvalues
    # (~1e-16 -> 1e-8 each); the sample route has none.
    assert feature_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert expected > 1


# Content and style losses ---------------------------------------------------------------------


def _mean_std(feats: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = feats.flatten(2)
    return flat.mean(2), (flat.var(2, unbiased=True) + eps).sqrt()


@torch.no_grad()
def test_feature_metrics_against_the_papers_formulas():
    model = make_model()
    content, style = smooth_image(1), smooth_image(2, 48, 56)
    image = model(content, style).clamp(0, 1)
    got = feature_metrics(model.encoder, image, content, style, model.eps)

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    f_img, f_content, f_style = (model.encoder(x, layers) for x in (image, content, style))
    for layer in ("relu4_1", "relu4_2"):  # MSE against the content image's features
        expected = ((f_img[layer] - f_content[layer]) ** 2).mean()
        assert got[f"content_loss_{layer}"] == pytest.approx(float(expected), rel=1e-5)
    # AdaIN eq. 13: sum over relu1_1..relu4_1 of ||mu - mu_s||^2 + ||sigma - sigma_s||^2, means
    # over channels (pytorch-AdaIN's MSELoss), unbiased variance + eps.
    expected = 0.0
    for layer in layers[:4]:
        (m1, s1), (m2, s2) = _mean_std(f_img[layer], model.eps), _mean_std(f_style[layer], 1e-5)
        expected += float(((m1 - m2) ** 2).mean() + ((s1 - s2) ** 2).mean())
    assert got["style_loss_mean_std"] == pytest.approx(expected, rel=1e-5)
    # Gatys eq. 4-5: sum_l 1/5 * 1/(4 N^2 M^2) sum (G - A)^2, A the style Gram at the image's M.
    expected = 0.0
    for layer in ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]:
        a, b = f_img[layer].flatten(2)[0], f_style[layer].flatten(2)[0]
        n, m = a.shape
        gram_style = b @ b.T / b.shape[1] * m
        expected += 0.2 * float(((a @ a.T - gram_style) ** 2).sum()) / (4 * n**2 * m**2)
    assert got["style_loss_gram"] == pytest.approx(expected, rel=1e-4)
    assert got["content_loss_relu4_1"] > 0 and got["style_loss_gram"] > 0


def test_feature_metrics_of_a_relu4_1_encoder_leave_deeper_losses_out():
    model = make_model(depth="relu4_1")
    content = smooth_image(1)
    got = feature_metrics(model.encoder, content, content, content)
    assert got["content_loss_relu4_1"] == 0.0
    assert got["style_loss_mean_std"] == pytest.approx(0.0, abs=1e-10)
    assert got["content_loss_relu4_2"] is None and got["style_loss_gram"] is None
    with pytest.raises(ValueError, match="same size"):
        feature_metrics(model.encoder, content[:, :, :32], content, content)


# LPIPS ----------------------------------------------------------------------------------------


def _lpips_by_hand(backbone, linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """lpips v0.1 written out: scaling layer, AlexNet, unit-normalised taps, weighted squares."""
    shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)

    def taps(image):
        h, out = ((image * 2 - 1) - shift) / scale, []
        for k, (index, _, stride, padding) in enumerate(ALEX_CONVS):
            w, b = backbone[f"features.{index}.weight"], backbone[f"features.{index}.bias"]
            h = F.relu(F.conv2d(h, w, b, stride=stride, padding=padding))
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            if k < 2:
                h = F.max_pool2d(h, 3, 2)
        return out

    total = torch.zeros(x.shape[0])
    for k, (a, b) in enumerate(zip(taps(x), taps(y), strict=True)):
        total += (F.conv2d((a - b) ** 2, linear[f"lin{k}.model.1.weight"])).mean(dim=(1, 2, 3))
    return total


def test_lpips_on_a_stand_in_network_matches_a_hand_computation(networks):
    assert networks.lpips is not None and networks.inception is not None
    assert networks.unavailable is None
    backbone, linear = stand_in_lpips()
    x = torch.cat([smooth_image(1), smooth_image(3)])
    y = torch.cat([smooth_image(2), smooth_image(1)])
    got = networks.lpips(x, y)
    torch.testing.assert_close(got, _lpips_by_hand(backbone, linear, x, y), rtol=1e-5, atol=1e-7)
    assert (got > 0).all()
    assert networks.lpips(x, x).abs().max() == 0.0
    assert networks.files["lpips_linear"].endswith("lpips_alex.safetensors")


def test_inception_stand_in_gives_finite_varied_features(networks):
    features = networks.inception(torch.cat([smooth_image(1), smooth_image(2)]))
    assert features.shape == (2, 2048) and features.dtype == torch.float64
    assert torch.isfinite(features).all()
    assert (features[0] - features[1]).abs().max() > 0


def test_broken_weight_files_fail_in_one_line_naming_the_file(tmp_path: Path):
    folder = save_stand_ins(tmp_path / "w", lpips_format="pth")
    (folder / "art_inception.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"art_inception\.pth is not a readable weights file"):
        load_metric_networks([str(folder)])
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, folder / "art_inception.pth")
    with pytest.raises(ValueError, match="not torchvision Inception3 weights"):
        load_metric_networks([str(folder)])
    _, linear = stand_in_lpips()
    linear["lin2.model.1.weight"] = torch.ones(1, 3, 1, 1)
    torch.save(linear, folder / "alex.pth")
    with pytest.raises(ValueError, match=r"lin2\.model\.1\.weight must be \(1, 8, 1, 1\)"):
        load_metric_networks([str(folder)])


def test_missing_networks_are_reported_unavailable_in_one_line(tmp_path: Path):
    assert "no metric weights given" in load_metric_networks([]).unavailable
    folder = tmp_path / "only-lpips"
    folder.mkdir()
    backbone, linear = stand_in_lpips()
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    torch.save(linear, folder / "alex.pth")
    networks = load_metric_networks([str(folder)])
    assert networks.lpips is not None and networks.inception is None
    line = networks.unavailable
    assert "\n" not in line and line.startswith("FID, ArtFID unavailable (art_inception.pth")
    assert "--metric-weights" in line


# adain evaluate -------------------------------------------------------------------------------


def _check_report(report: dict, methods: list[str], n_pairs: int) -> None:
    assert set(report) == {
        "adain_version", "device", "settings", "pairs", "styles", "metric_networks", "notes",
        "runs",
    }  # fmt: skip
    assert [run["method"] for run in report["runs"]] == methods
    for run in report["runs"]:
        assert set(run) == {
            "model", "method", "seconds_per_image", "means", "fid", "art_fid", "records",
        }  # fmt: skip
        assert len(run["records"]) == n_pairs and run["seconds_per_image"] > 0
        for record in run["records"]:
            assert {"content", "style", "seconds", "content_loss_relu4_1", "lpips"} <= set(record)
        values = [r["style_loss_mean_std"] for r in run["records"]]
        assert run["means"]["style_loss_mean_std"] == pytest.approx(sum(values) / len(values))


def test_evaluate_on_the_examples_offline_reports_lpips_and_artfid_unavailable(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("ADAIN_METRIC_WEIGHTS", raising=False)
    out = tmp_path / "report.json"
    args = ["evaluate", str(CONTENTS), "-s", str(STYLES), "--model", str(tiny_model_dir)]
    args += ["--content-size", "64", "--style-size", "64", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and "LPIPS, FID and ArtFID unavailable" in result.stderr
    report = json.loads(out.read_text())
    _check_report(report, ["adain"], 9)
    run = report["runs"][0]
    assert run["fid"] is None and run["art_fid"] is None and run["means"]["lpips"] is None
    assert run["means"]["content_loss_relu4_2"] > 0 and run["means"]["style_loss_gram"] > 0
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["model", "method", "s/img"] and "ArtFID" in header
    assert row.split()[1] == "adain" and row.split()[-1] == "-"  # ArtFID unavailable
    assert f"{run['means']['style_loss_mean_std']:.4g}" in row
    # Never replaced without --overwrite.
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists: pass --overwrite" in again.stderr


def test_evaluate_with_stand_in_weights_from_a_folder_computes_lpips_fid_and_artfid(
    tiny_model_dir: Path, weights_dir: Path
):
    args = ["evaluate", str(CONTENTS / "astronaut.jpg"), "-s", str(STYLES / "brick.jpg")]
    args += ["-s", str(STYLES / "waves.jpg"), "--model", str(tiny_model_dir), "--json"]
    args += ["--content-size", "64", "--style-size", "64", "--metric-weights", str(weights_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # nothing unavailable
    report = json.loads(result.stdout)
    _check_report(report, ["adain"], 2)
    run = report["runs"][0]
    assert run["means"]["lpips"] > 0 and run["fid"] > 0
    assert run["art_fid"] == pytest.approx((1 + run["means"]["lpips"]) * (1 + run["fid"]))


def test_metric_weights_load_from_the_stand_in_hub_as_from_a_folder(stand_in_hub, tmp_path: Path):
    folder = save_stand_ins(tmp_path / "w", lpips_format="pth")
    files = {name: (folder / name).read_bytes() for name in ("alex.pth", "art_inception.pth")}
    stand_in_hub.commit("metrics/lpips", {"alex.pth": files["alex.pth"]})
    backbone = {"alexnet-owt-7be5be79.pth": (folder / "alexnet-owt-7be5be79.pth").read_bytes()}
    stand_in_hub.commit("metrics/lpips", backbone)  # a second commit on main
    stand_in_hub.commit("metrics/art", {"art_inception.pth": files["art_inception.pth"]})

    from_hub = load_metric_networks(["metrics/lpips", "metrics/art@main"])
    from_folder = load_metric_networks([str(folder)])
    assert from_hub.unavailable is None
    requested = [path for _, path, _ in stand_in_hub.requests]
    assert "/metrics/art/resolve/main/art_inception.pth" in requested
    assert "/metrics/lpips/resolve/main/alexnet-owt-7be5be79.pth" in requested
    x, y = smooth_image(1), smooth_image(2)
    assert float(from_hub.lpips(x, y)[0]) == float(from_folder.lpips(x, y)[0]) > 0
    hub_state, folder_state = from_hub.inception.state_dict(), from_folder.inception.state_dict()
    assert hub_state.keys() == folder_state.keys()
    assert all(torch.equal(hub_state[k], folder_state[k]) for k in hub_state)
    with pytest.raises(ValueError, match="no Hub repository with this id"):
        load_metric_networks(["metrics/missing"])


def test_evaluate_pairs_list_gatys_and_the_table(tiny_model_dir: Path, tmp_path: Path):
    listing = tmp_path / "pairs.txt"
    listing.write_text(
        f"# content, style\n{CONTENTS / 'chelsea.jpg'}, {STYLES / 'waves.jpg'}\n"
        f"{CONTENTS / 'astronaut.jpg'}\t{STYLES / 'brick.jpg'}\n"
    )
    assert [p[1].name for p in read_pairs(listing)] == ["waves.jpg", "brick.jpg"]
    config = EvalConfig(pairs=str(listing), models=[str(tiny_model_dir)], gatys_steps=2,
                        content_size=32, style_size=32, metric_weights=[])  # fmt: skip
    report = evaluate(config)
    _check_report(report, ["adain", "gatys"], 2)
    assert [p["style"] for p in report["pairs"]] == [
        str(STYLES / "waves.jpg"),
        str(STYLES / "brick.jpg"),
    ]
    table = format_table(report).splitlines()
    assert len(table) == 3 and table[2].split()[1] == "gatys"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--style", "missing.jpg"], "style"),
        (["-s", str(STYLES), "--transfer", "gatys"], "--gatys-steps"),
        (["-s", str(STYLES), "--alpha", "-1"], "alpha must be a finite number >= 0"),
        (["-s", str(STYLES), "-o", "report.txt"], "give a file ending in .json"),
        (["-s", str(STYLES), "--metric-weights", "./nowhere"], "--metric-weights ./nowhere"),
        (["-s", str(STYLES), "--content-size", "8"], "--content-size must be >= 16"),
    ],
)
def test_evaluate_errors_are_one_line(tiny_model_dir: Path, extra: list[str], message: str):
    args = ["evaluate", str(CONTENTS / "coffee.jpg"), "--model", str(tiny_model_dir), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_transfer_efdm_passes_through_or_is_refused_in_one_line(tiny_model_dir: Path):
    from adain.model import AdaIN

    args = ["evaluate", str(CONTENTS / "coffee.jpg"), "-s", str(STYLES / "waves.jpg"),
            "--model", str(tiny_model_dir), "--content-size", "32", "--style-size", "32",
            "--transfer", "adain,efdm", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    import inspect

    if "transfer" not in inspect.signature(AdaIN.forward).parameters:
        assert result.exit_code == 1 and "--transfer efdm" in result.stderr
        return
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [run["method"] for run in runs] == ["adain", "efdm"]
    assert runs[0]["means"] != runs[1]["means"]  # a different transfer, different losses


# Training hook --------------------------------------------------------------------------------


def test_training_logs_validation_metrics_every_n_steps(tmp_path: Path):
    from adain.image import save_image
    from train.config import load_toml, override
    from train.loop import fit

    for i in range(4):
        save_image(smooth_image(i, 40, 48)[0], tmp_path / "content" / f"{i}.png")
        save_image(smooth_image(10 + i, 48, 40)[0], tmp_path / "style" / f"{i}.png")
    config = override(load_toml("smoke"), {
        "content": [str(tmp_path / "content")], "style": [str(tmp_path / "style")],
        "base_channels": TINY_WIDTH, "output": str(tmp_path / "run"), "max_steps": 2,
        "sample_every": 0, "save_every": 0, "eval_every": 1, "eval_size": 32,
        "eval_content": [str(tmp_path / "content" / "0.png")],
        "eval_style": [str(tmp_path / "style" / "0.png"), str(tmp_path / "style" / "1.png")],
    })  # fmt: skip
    fit(config)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    evals = [json.loads(line) for line in lines if "eval" in json.loads(line)]
    assert [record["step"] for record in evals] == [1, 2]
    for record in evals:
        means = record["eval"]
        assert means["content_loss_relu4_1"] > 0 and means["style_loss_mean_std"] > 0
        assert "style_loss_gram" not in means  # the training encoder stops at relu4_1
    assert evals[0]["eval"] != evals[1]["eval"]  # the decoder trained in between
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "TensorBoard holds the eval scalars and the grid"
    with pytest.raises(ValueError, match="eval_every needs eval_content and eval_style"):
        override(config, {"eval_style": []}).validate()


def test_evaluate_help_fits_80_columns_and_names_every_option():
    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    for option in ("--style", "--pairs", "--model", "--transfer", "--gatys-steps", "--alpha",
                   "--metric-weights", "--output", "--json", "--overwrite"):  # fmt: skip
        assert option in text
    assert "$ADAIN_METRIC_WEIGHTS" in text and "org/name@revision" in text


def test_gatys_on_a_relu4_1_model_is_refused_before_anything_runs(tmp_path: Path):
    make_model(depth="relu4_1").save_pretrained(tmp_path / "shallow")
    args = ["evaluate", str(CONTENTS / "coffee.jpg"), "-s", str(STYLES / "waves.jpg")]
    args += ["--model", str(tmp_path / "shallow"), "--gatys-steps", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "error: --gatys-steps needs an encoder to relu5_1; this model's stops at relu4_1: "
        "evaluate the Gram method with another --model\n"
    )
