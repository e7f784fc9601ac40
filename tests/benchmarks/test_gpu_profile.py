"""``benchmarks/gpu_profile.py`` on the CPU fallback (host timers) and the op timer it is built on."""

from __future__ import annotations

import json

import pytest

import ember as em
from benchmarks import gpu_profile
from benchmarks.op_timer import OpTimer, summarize
from ember.autograd.ops.conv_relu import RectifiedConvolution2d


def test_cpu_fallback_writes_json_and_markdown_with_the_device_name(tmp_path):
    forward_before = RectifiedConvolution2d.__dict__["forward"]
    assert gpu_profile.main(["--device", "cpu", "--models", "simple_convnet", "--batches", "2", "--precisions",
                             "float32", "--steps", "2", "--warmup", "1", "--out", str(tmp_path)]) == 0
    assert RectifiedConvolution2d.__dict__["forward"] is forward_before  # the timer put every op back
    (js,) = tmp_path.glob("gpu_profile-*.json")
    doc = json.loads(js.read_text())
    assert doc["device"] == "cpu" and doc["device_name"]
    (case,) = doc["cases"]
    assert (case["model"], case["batch"], case["precision"], case["timer"]) == (
        "simple_convnet", 2, "float32", "host perf_counter")
    rows = {(r["op"], r["phase"]): r for r in case["ops"]}
    for key in (("RectifiedConvolution2d", "forward"), ("RectifiedConvolution2d", "backward"),
                ("Affine", "forward"), ("RectifiedAffine", "backward"), ("SoftmaxCrossEntropy", "backward")):
        assert rows[key]["host_ms"] > 0 and rows[key]["device_ms"] is None
    assert rows[("Affine", "forward")]["calls"] == 1 and rows[("RectifiedAffine", "forward")]["calls"] == 1
    p = case["phases_ms"]
    assert p["step"] == pytest.approx(p["forward"] + p["backward"] + p["optimizer"])
    assert sum(r["host_ms"] for r in case["ops"]) <= p["forward"] + p["backward"]
    assert "skipped" in case["kernels"]
    md = js.with_suffix(".md").read_text()
    assert doc["device_name"] in md and "| RectifiedConvolution2d | forward |" in md


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    for argv in (["--device", "cpu", "--batches", "0", "--out", str(tmp_path)],
                 ["--device", "cpu", "--models", "resnet", "--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as exc:
            gpu_profile.main(argv)
        assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_op_timer_counts_nested_ops_once_and_restores_the_classes():
    class Doubled(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return gy * 2

    class Outer(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return Doubled.forward(ctx, x) + 1  # another op's body inside this one

        @staticmethod
        def backward(ctx, gy):
            return gy * 2

    x = em.ones(3, requires_grad=True)
    original = Outer.__dict__["forward"]
    with OpTimer() as timer:
        assert Outer.__dict__["forward"] is not original
        Outer.apply(x).sum().backward()
    rows = {(r["op"], r["phase"]): r for r in summarize(timer.records, None, 1)}
    assert rows[("Outer", "forward")]["calls"] == 1 and ("Doubled", "forward") not in rows
    assert rows[("Outer", "backward")]["calls"] == 1
    assert Outer.__dict__["forward"] is original
    with OpTimer() as timer:
        pass
    Outer.apply(x)
    assert timer.records == []
