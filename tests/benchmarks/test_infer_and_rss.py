"""The infer suite's eval pass over the 10k test set, and the per-case peak RSS the worker records."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest

from benchmarks.harness import schema, stats, timing
from benchmarks.harness.worker import Session, make_target
from benchmarks.suites import infer, work
from benchmarks.targets import common

LINUX = sys.platform.startswith("linux")


# ------------------------------------------------------------ the eval cases
def test_full_suite_has_a_10k_eval_pass_per_model():
    evals = [c for c in infer.cases(quick=False) if c["group"] == "eval"]
    assert [c["name"] for c in evals] == [f"{m} eval 10k b1000" for m in infer.MODELS]
    for c in evals:
        assert c["kind"] == "infer" and c["items"] == 10_000
        assert c["params"]["total"] == 10_000 and c["params"]["batch"] == 1_000
        assert c["work"]["flops"] == pytest.approx(10 * work.infer_work(c["params"]["model"], 1_000)["flops"])
        assert schema.errors(c, schema.CASE) == []


def test_quick_suite_keeps_the_eval_pass_small():
    evals = [c for c in infer.cases(quick=True) if c["group"] == "eval"]
    assert len(evals) == 1 and evals[0]["items"] <= 1_000 and evals[0]["items"] > evals[0]["params"]["batch"]


def test_eval_case_rejects_empty_sizes():
    with pytest.raises(ValueError, match="total >= 1"):
        infer.eval_case("mlp", total=0)


def test_eval_batches_split_the_images_and_keep_plain_cases_unchanged():
    p = {"model": "mlp", "batch": 4, "total": 10, "input_dim": [1, 3, 3]}
    parts = common.eval_batches(p, seed=5)
    assert [len(b) for b in parts] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(parts), common.batch({**p, "batch": 10}, 5)[0])
    plain = {"model": "mlp", "batch": 4, "input_dim": [1, 3, 3]}
    (only,) = common.eval_batches(plain, seed=5)
    np.testing.assert_array_equal(only, common.batch(plain, 5)[0])


def _reference_kernels():
    """ember's NumPy kernels for a block (no Numba compilation in a short test), where selectable."""
    try:
        from ember.backends.selection import use_cpu_kernels
    except ImportError:
        return contextlib.nullcontext()
    return use_cpu_kernels("numpy")


@pytest.mark.parametrize("target", ["book-numpy", "ember-numpy", "torch-cpu"])
def test_targets_loop_over_every_batch_of_an_eval_case(target):
    if target == "torch-cpu":
        pytest.importorskip("torch")
    case = infer.eval_case("two_layer_net", total=10, batch=4)
    t = make_target(target)
    with _reference_kernels():
        bench = t.build(case)
        out = bench.step()
    assert bench.items == 10 and bench.meta["batches"] == 3
    assert tuple(out.shape) == (2, 10)  # the last, shorter batch's logits


# ------------------------------------------------------------------ peak RSS
@pytest.mark.skipif(not LINUX, reason="VmHWM and /proc/self/clear_refs are Linux's")
def test_case_peak_sees_a_transient_allocation_and_resets_between_cases():
    start, source = timing.start_case_peak()
    if source != "VmHWM":
        pytest.skip("this kernel does not let a process reset its peak RSS")
    block = np.ones(64 << 17)  # 64 MiB, touched
    del block
    peak = timing.case_peak_rss(source)
    assert peak >= start + (60 << 20)
    timing.start_case_peak()
    assert timing.case_peak_rss(source) < peak - (30 << 20)


def test_worker_teardown_reports_the_case_peak():
    session = Session("book-numpy")
    assert session.handle({"cmd": "probe"})["status"] == "ok"
    case = infer.eval_case("two_layer_net", total=20, batch=8)
    assert session.handle({"cmd": "setup", "case": case, "warmup": 1, "repeats": 2})["status"] == "ok"
    session.handle({"cmd": "sample", "n": 1})
    done = session.handle({"cmd": "teardown"})
    assert done["status"] == "ok" and done["peak_rss_source"] in ("VmHWM", "ru_maxrss")
    assert done["peak_rss_bytes"] > 0
    if done["peak_rss_source"] == "VmHWM":
        assert done["peak_rss_bytes"] >= done["rss_start_bytes"]
    assert session.handle({"cmd": "teardown"}) == {"status": "ok"}  # no case: nothing to report


def _doc_with_peaks(**extra) -> dict:
    case = {"name": "c", "kind": "infer", "params": {}, "items": 10_000, "item": "sample"}
    s = stats.summarize([1.0, 1.2])
    ok = {"case": "c", "target": "t", "status": "ok", "reason": None, "samples_s": [1.0, 1.2], "stats": s,
          "items_per_s": 10_000.0, "first_call_s": 1.5, "memory": None, "roofline": None,
          "peak_rss_bytes": 300 << 20, "rss_start_bytes": 100 << 20, "peak_rss_source": "VmHWM", **extra}
    return {"schema_version": schema.SCHEMA_VERSION, "suite": "infer", "title": "x", "created": "now",
            "elapsed_s": 1.0, "quick": True, "command": ["python"], "display": "throughput",
            "machine": {"cpu": "c", "cpu_count": 2, "load_average": None}, "versions": {"python": "3", "numpy": "2"},
            "settings": {"repeats": 2, "warmup": 1, "threads": None, "seed": 0, "interleaved": True},
            "baselines": [], "device_tag": "cpu",
            "targets": [{"name": "t", "device": "cpu", "status": "ok", "reason": None, "info": {}}],
            "peaks": {}, "cases": [case], "results": [ok]}


def test_schema_accepts_peak_rss_and_rejects_bad_values():
    schema.validate(_doc_with_peaks())
    with pytest.raises(schema.SchemaError, match="expected >= 0"):
        schema.validate(_doc_with_peaks(peak_rss_bytes=-1))
    with pytest.raises(schema.SchemaError, match="peak_rss_source"):
        schema.validate(_doc_with_peaks(peak_rss_source="guess"))


def test_report_has_a_peak_rss_table():
    from benchmarks.harness.report import render

    md = render(_doc_with_peaks())
    assert "## Peak RSS of the worker during the case" in md
    assert "| c | 315MB (+210MB) |" in md  # 300 MiB peak, 200 MiB over the start (SI units, like the memory table)
    lifetime = render(_doc_with_peaks(peak_rss_source="ru_maxrss", rss_start_bytes=None))
    assert "| c | 315MB (lifetime) |" in lifetime
    assert "Peak RSS" not in render(_doc_with_peaks(peak_rss_bytes=None))


def test_a_suite_note_is_validated_and_printed_under_the_header():
    from benchmarks.harness.report import render

    doc = _doc_with_peaks()
    doc["note"] = infer.NOTE
    schema.validate(doc)
    assert infer.NOTE in render(doc) and "synthetic" in infer.NOTE


def test_median_seconds_is_the_median_of_single_calls(monkeypatch):
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 25.0, 30.0, 32.0])  # call times 3, 1, 5, 2
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    assert timing.median_seconds(lambda: calls.append(1), 4) == 2.5  # (2 + 3) / 2
    assert len(calls) == 4
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 25.0])
    assert timing.median_seconds(lambda: None, 3) == 3.0
