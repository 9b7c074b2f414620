"""train.precision: auto: bf16 autocast only where the hardware has bf16 units and the model is wide enough."""
import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.train import precision as P


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    """A CPU without bf16 units and without a GPU: torch's queries say no, and so do the CPU flags."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(P, "cpu_flags", lambda *a: {"avx2", "avx512f", "avx512bw"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n"
                 "flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert {"avx512_bf16", "amx_tile", "fpu"} <= P.cpu_flags(f)
    assert P.cpu_flags(tmp_path / "missing") == set()
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert "bf16" in P.cpu_flags(arm) & P.BF16_CPU_FLAGS


def test_detection_without_bf16_is_false_and_with_a_flag_true(no_bf16_cpu, monkeypatch):
    assert P.cpu_has_native_bf16() is False
    monkeypatch.setattr(P, "cpu_flags", lambda *a: {"avx512f", "avx512_bf16"})
    assert P.cpu_has_native_bf16() is True


def test_auto_picks_fp32_on_a_cpu_without_bf16_whatever_the_width(no_bf16_cpu):
    for width in (None, 64, 192, 1024):
        assert P.auto_precision("cpu", width) == "32-true"
        assert P.auto_precision("auto", width) == "32-true"
    built = []
    assert P.resolve_precision("auto", "auto", lambda: built.append(1)) == "32-true"
    assert built == []  # the model is not even built to decide


def test_auto_picks_bf16_on_a_bf16_cpu_only_from_the_measured_width(bf16_cpu):
    assert P.auto_precision("cpu", P.BF16_MIN_WIDTH) == "bf16-mixed"
    assert P.auto_precision("cpu", P.BF16_MIN_WIDTH - 1) == "32-true"
    assert P.auto_precision("cpu", None) == "32-true"
    assert P.auto_precision("mps", 1024) == "32-true"


def test_auto_picks_bf16_on_a_gpu_with_bf16_and_fp32_on_an_older_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(
        including_emulation) or True)
    assert P.auto_precision("auto", None) == "bf16-mixed"
    assert P.auto_precision("cuda", 64) == "bf16-mixed"
    assert asked and not any(asked)   # emulated bf16 (pre-Ampere) does not count
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert P.auto_precision("cuda", 1024) == "32-true"


def test_an_explicit_precision_is_kept(no_bf16_cpu):
    assert P.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert P.resolve_precision("32-true", "cuda") == "32-true"


def test_width_is_read_from_the_built_model(bf16_cpu):
    tiny = load_recipe("ijepa-digits", ["encoder.size=tiny", "encoder.depth=1", "predictor.depth=1"])
    micro = load_recipe("ijepa-digits", ["encoder.size=micro", "encoder.depth=1", "predictor.depth=1"])
    assert P.transformer_width(build_method(tiny, (1, 8, 8), seed=0)) == 192
    assert P.resolve_precision("auto", "cpu", lambda: build_method(tiny, (1, 8, 8), seed=0)) == "bf16-mixed"
    assert P.resolve_precision("auto", "cpu", lambda: build_method(micro, (1, 8, 8), seed=0)) == "32-true"
    assert P.transformer_width(torch.nn.Linear(3, 3)) is None
    built = []
    assert P.resolve_precision("auto", "cpu", lambda: built.append(1), width=192) == "bf16-mixed"
    assert built == []  # a width given is not built again


def test_the_training_record_says_which_precision_ran(no_bf16_cpu, tmp_path):
    import numpy as np

    from polyjepa.config import TrainConfig
    from polyjepa.runner import train_method

    cfg = load_recipe("ijepa-digits", ["encoder.size=micro", "encoder.depth=1", "predictor.dim=16",
                                       "predictor.depth=1", "predictor.heads=2"])
    method = build_method(cfg, (1, 8, 8), seed=0)
    x = np.random.default_rng(0).normal(size=(32, 1, 8, 8)).astype(np.float32)
    rec = train_method(method, x, train=TrainConfig(batch_size=16, max_steps=2, checkpoint_every=0,
                                                   monitor_every=0), run_dir=tmp_path, progress=False)
    assert rec["precision"] == "32-true" and rec["steps"] == 2


def test_a_size_override_sets_depth_unless_depth_is_also_given():
    assert "depth" not in load_recipe("ijepa-digits", ["encoder.size=tiny"]).encoder  # the recipe's depth: 4
    cfg = load_recipe("ijepa-digits", ["encoder.size=tiny"])
    assert build_method(cfg, (1, 8, 8), seed=0).backbone.encoder.depth == 12
    assert load_recipe("ijepa-digits", ["encoder.size=tiny", "encoder.depth=6"]).encoder.depth == 6
    assert load_recipe("ijepa-digits", ["encoder.depth=6"]).encoder.size == "nano"
    assert load_recipe("ijepa-digits", []).encoder.depth == 4  # the recipe alone keeps its own


def test_the_throughput_benchmark_builds_the_configuration_it_names():
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"))
    cfg = load_recipe("ijepa-digits", bench["CONFIG"])
    method = build_method(cfg, (3, 32, 32), seed=0)
    text = bench["built_config"](method, 64)
    assert "encoder 192 wide x 12 deep, 3 heads" in text and "predictor 96 wide x 6 deep" in text
    assert "3x32x32 input, patch 4 (64 tokens)" in text
