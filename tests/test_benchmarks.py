"""The prepared GPU benchmark runs end to end (on the CPU here) and its fast path is accurate."""

from __future__ import annotations

import json

import pytest

from benchmarks.gpu_bench import main


def test_gpu_benchmark_smoke_run_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    main(
        ["--device", "cpu", "--size", "32", "--batch", "3", "--width", "8", "--precision",
         "fp32", "--seconds", "0", "--rounds", "1", "--json", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["batch"] == 3 and result["size"] == 32
    assert result["baseline_images_per_s"] > 0 and result["adain_images_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["adain_images_per_s"] / result["baseline_images_per_s"]
    )
    # fp32 fast path (channels_last, fused decoder) vs fp32 eager: float rounding only.
    assert result["max_rel_error"] < 1e-5
    assert "images/s" in capsys.readouterr().out


def test_gpu_benchmark_explains_a_missing_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["--json", str(tmp_path / "gpu.json")])
