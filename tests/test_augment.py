"""``adain.augment.StyleAugment``: identity at p=0, determinism under a generator, shapes, dtype
and range kept, the model's own output per image, and use in a DataLoader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import smooth_image
from torch.utils.data import DataLoader, Dataset

from adain.augment import StyleAugment, stylize_each
from adain.efdm import resample
from adain.image import to_pil
from adain.style import StyleStats


@pytest.fixture
def images() -> torch.Tensor:
    return torch.cat([smooth_image(seed, 32, 40) for seed in range(6)])


@pytest.fixture
def bank(tiny_model) -> list[torch.Tensor]:
    return [smooth_image(50 + seed, 32, 32) for seed in range(3)]


def test_p_zero_is_the_identity_and_p_one_changes_every_image(tiny_model, bank, images):
    assert StyleAugment(tiny_model, bank, p=0.0)(images) is images
    out = StyleAugment(tiny_model, bank, p=1.0)(images, torch.Generator().manual_seed(0))
    changed = (out - images).abs().flatten(1).amax(1)
    assert (changed > 0.05).all(), changed


def test_each_image_is_the_models_output_for_its_draw(tiny_model, bank, images):
    augment = StyleAugment(tiny_model, bank, p=0.5, alpha=(0.2, 0.9))
    out = augment(images, torch.Generator().manual_seed(1))
    chosen, index, alpha = augment.draw(len(images), torch.Generator().manual_seed(1))
    assert 0 < int(chosen.sum()) < len(images)  # seed 1 picks some of the six, not all
    for i in range(len(images)):
        if not chosen[i]:
            assert torch.equal(out[i], images[i])
            continue
        with torch.no_grad():  # the model called directly, one image at a time
            style = tiny_model.style_stats(bank[int(index[i])])
            expected = tiny_model(images[i : i + 1], style, float(alpha[i])).clamp(0, 1)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-4, atol=1e-4)
        assert 0.2 <= float(alpha[i]) <= 0.9


def test_efdm_bank(tiny_model, bank, images):
    augment = StyleAugment(tiny_model, bank, p=1.0, alpha=1.0, transfer="efdm")
    assert augment.bank_quantiles.shape == (3, 64, 1024)
    out = augment(images[:2], torch.Generator().manual_seed(0))
    _, index, _ = augment.draw(2, torch.Generator().manual_seed(0))
    for i in range(2):
        with torch.no_grad():
            stats = tiny_model.style_stats(bank[int(index[i])], transfer="efdm")
            stats = StyleStats(stats.mean, stats.std, quantiles=resample(stats.quantiles, 1024))
            expected = tiny_model(images[i : i + 1], stats, 1.0, transfer="efdm").clamp(0, 1)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="only AdaIN's mean and std"):
        StyleAugment(tiny_model, tiny_model.style_stats(bank[0]), transfer="efdm")


def test_deterministic_under_a_generator(tiny_model, bank, images):
    augment = StyleAugment(tiny_model, bank, p=0.5)
    first = augment(images, torch.Generator().manual_seed(11))
    again = augment(images, torch.Generator().manual_seed(11))
    other = augment(images, torch.Generator().manual_seed(12))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # The module's own generator is used when a call gives none.
    seeded = StyleAugment(tiny_model, bank, p=0.5, generator=torch.Generator().manual_seed(11))
    assert torch.equal(seeded(images), first)


def test_shape_dtype_and_range_are_kept(tiny_model, bank, images):
    augment = StyleAugment(tiny_model, bank, p=1.0, alpha=1.5)  # over-stylised: clamped
    generator = torch.Generator().manual_seed(0)
    out = augment(images, generator)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    as_bytes = (images * 255).round().to(torch.uint8)
    out_bytes = augment(as_bytes, torch.Generator().manual_seed(0))
    assert out_bytes.dtype == torch.uint8 and out_bytes.shape == as_bytes.shape
    # The stylisation of the same pixels in [0, 1], rounded to bytes.
    floats = augment(as_bytes.float() / 255, torch.Generator().manual_seed(0))
    assert (out_bytes.float() - floats * 255).abs().max() <= 0.5 + 1e-3
    single = augment(images[0], torch.Generator().manual_seed(0))
    assert single.shape == images[0].shape
    half = augment(images.to(torch.bfloat16), torch.Generator().manual_seed(0))
    assert half.dtype == torch.bfloat16


def test_bank_from_presets_files_and_stats(tiny_model, bank, tmp_path: Path):
    preset = tiny_model.style_stats(bank[0])
    preset.save(tmp_path / "zero.safetensors")
    to_pil(bank[1]).save(tmp_path / "one.png")
    augment = StyleAugment(
        tiny_model,
        [tmp_path / "zero.safetensors", str(tmp_path / "one.png"), preset],
        style_size=None,
    )
    assert augment.num_styles == 3
    torch.testing.assert_close(augment.bank_mean[0:1], preset.mean)
    torch.testing.assert_close(augment.bank_mean[2:3], preset.mean)
    from_file = tiny_model.style_stats(torch.round(bank[1] * 255) / 255)  # PNG: 8 bits
    torch.testing.assert_close(augment.bank_std[1:2], from_file.std, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="at least one style"):
        StyleAugment(tiny_model, [])
    with pytest.raises(ValueError, match="probability"):
        StyleAugment(tiny_model, bank, p=1.5)
    with pytest.raises(ValueError, match="alpha"):
        StyleAugment(tiny_model, bank, alpha=(1.0, 0.5))


def test_stylize_each_matches_one_call_per_image(tiny_model, bank, images):
    stats = tiny_model.style_stats(torch.cat([bank[0], bank[1], bank[2]] * 2))
    alphas = [0.3, 1.0, 0.3, 0.7, 1.0, 0.0]
    out = stylize_each(tiny_model, images, stats.mean, stats.std, alphas)
    for i, alpha in enumerate(alphas):
        with torch.no_grad():
            one = StyleStats(stats.mean[i : i + 1], stats.std[i : i + 1])
            expected = tiny_model(images[i : i + 1], one, alpha)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="one style and one alpha per image"):
        stylize_each(tiny_model, images, stats.mean, stats.std, alphas[:2])


class _Images(Dataset):
    def __init__(self, transform: StyleAugment):
        self.transform = transform

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(smooth_image(index, 32, 32)[0])  # (3, H, W), per sample


def test_in_a_dataloader_on_the_cpu(tiny_model, bank):
    augment = StyleAugment(tiny_model, bank, p=0.5)

    def epoch(workers: int) -> torch.Tensor:
        loader = DataLoader(
            _Images(augment), batch_size=3, num_workers=workers,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        return torch.cat(list(loader))

    # Workers draw from torch's generator, which the DataLoader seeds per worker from its own.
    first, again = epoch(2), epoch(2)
    assert first.shape == (6, 3, 32, 32) and torch.equal(first, again)
    originals = torch.cat([smooth_image(i, 32, 32) for i in range(6)])
    changed = (first - originals).abs().flatten(1).amax(1) > 0
    assert 0 < int(changed.sum()) < 6


@pytest.mark.slow  # a resnet18 step and two 512 px styles: seconds
def test_readme_training_loop_runs(tiny_model, tiny_model_dir, tmp_path: Path, monkeypatch):
    """The README's torchvision example, shrunk: a tiny model, 32 px crops, two classes."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Style augmentation in training\n", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    shrink = {
        "load_model()": f"load_model({str(tiny_model_dir)!r})",
        "RandomResizedCrop(224)": "RandomResizedCrop(32)",
        "batch_size=64": "batch_size=4",
        "num_workers=8": "num_workers=0",
        "resnet50()": "resnet18(num_classes=2)",
    }
    for old, new in shrink.items():
        assert old in code, f"the README example no longer has {old}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(Path(__file__).parent.parent / "examples")
    tiny_model.style_stats(smooth_image(7, 32, 32)).save(tmp_path / "waves.safetensors")
    for label in ("cats", "dogs"):
        (tmp_path / "imagenet" / "train" / label).mkdir(parents=True)
        for seed in range(3):
            to_pil(smooth_image(seed, 40, 48)).save(
                tmp_path / "imagenet/train" / label / f"{seed}.png"
            )
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["images"].shape == (2, 3, 32, 32)  # the last batch: 6 images in fours
    assert torch.isfinite(namespace["loss"])
