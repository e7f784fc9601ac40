"""The GPU baselines are named for their float32 math, and each worker records the settings it ran with.

No GPU here: this checks the spec table, the worker environment built from it,
and the functions that apply and report the settings (torch's flags are
process-wide, so they are restored after each test).
"""

from __future__ import annotations

import pytest

from benchmarks.harness.procs import worker_env
from benchmarks.harness.report import _notes
from benchmarks.targets import TARGETS

TF32_OFF_CUDA = ["ember-cuda", "ember-cuda-graph", "ember-cuda-amp", "ember-cuda-amp-graph"]


def test_spec_table_names_the_tf32_state():
    assert TARGETS["torch-cuda"].options == {"tf32": "off"}
    assert TARGETS["torch-cuda-tf32"].options == {"tf32": "default"}
    assert TARGETS["torch-cuda-amp"].options["tf32"] == "default"
    assert TARGETS["ember-cuda-tf32"].env == {"CUPY_TF32": "1"}
    for name in TF32_OFF_CUDA:
        assert TARGETS[name].env["CUPY_TF32"] == "0", name
    for name in ("torch-cuda", "torch-cuda-tf32", "ember-cuda", "ember-cuda-tf32"):
        spec = TARGETS[name]
        assert spec.device == "cuda" and "TF32" in spec.description, name
    assert "off" in TARGETS["torch-cuda"].description and "off" in TARGETS["ember-cuda"].description


def test_worker_env_overrides_an_inherited_cupy_tf32(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "1")
    assert worker_env(TARGETS["ember-cuda"], None, 0)["CUPY_TF32"] == "0"
    monkeypatch.setenv("CUPY_TF32", "0")
    assert worker_env(TARGETS["ember-cuda-tf32"], None, 0)["CUPY_TF32"] == "1"


def test_ember_records_its_tf32_setting(monkeypatch):
    from benchmarks.targets.ember_target import precision_settings

    monkeypatch.setenv("CUPY_TF32", "1")
    assert precision_settings("cuda") == {"tf32_mode": "on", "CUPY_TF32": "1", "NVIDIA_TF32_OVERRIDE": None}
    monkeypatch.setenv("CUPY_TF32", "0")
    assert precision_settings("cuda")["tf32_mode"] == "off"
    monkeypatch.delenv("CUPY_TF32")
    assert precision_settings("cuda")["tf32_mode"] == "off"  # CuPy's own default
    assert precision_settings("cpu") == {"tf32_mode": "n/a (cpu)"}


@pytest.fixture
def torch_flags():
    """torch, with its process-wide TF32 flags restored afterwards."""
    torch = pytest.importorskip("torch")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield torch
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_torch_tf32_off_and_default(torch_flags):
    torch = torch_flags
    from benchmarks.targets.torch_target import TorchTarget, apply_tf32

    torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
    default = apply_tf32("default")
    assert default["tf32_mode"] == "default" and default["cudnn.allow_tf32"] is True
    off = apply_tf32("off")
    assert off["tf32_mode"] == "off" and off["cudnn.allow_tf32"] is False and off["cuda.matmul.allow_tf32"] is False
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    with pytest.raises(ValueError, match="tf32 to be one of"):
        apply_tf32("on")
    torch.backends.cudnn.allow_tf32 = True
    info = TorchTarget("torch-x", device="cpu", tf32="off").probe()  # the probe applies and records them
    assert info["precision_settings"]["cudnn.allow_tf32"] is False and torch.backends.cudnn.allow_tf32 is False


def test_report_shows_each_gpu_targets_tf32_mode():
    doc = {"targets": [
        {"name": "torch-cuda", "device": "cuda", "status": "ok", "reason": None, "description": "d",
         "info": {"precision_settings": {"tf32_mode": "off"}}},
        {"name": "ember-cuda-tf32", "device": "cuda", "status": "ok", "reason": None, "description": "d",
         "info": {"precision_settings": {"tf32_mode": "on"}}},
        {"name": "ember-numpy", "device": "cpu", "status": "ok", "reason": None, "description": "d",
         "info": {"precision_settings": {"tf32_mode": "n/a (cpu)"}}},
    ], "results": []}
    lines = _notes(doc, {})
    assert any(line.startswith("- `torch-cuda`") and "tf32=off" in line for line in lines)
    assert any(line.startswith("- `ember-cuda-tf32`") and "tf32=on" in line for line in lines)
    assert not any("tf32" in line for line in lines if line.startswith("- `ember-numpy`"))
