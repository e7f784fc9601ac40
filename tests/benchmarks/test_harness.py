"""The benchmark harness: statistics helpers, the results schema, a tiny end-to-end run, the book baseline."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ember as em
from benchmarks.book_numpy import Pooling, build_net, col2im, im2col
from benchmarks.harness import schema, stats, timing
from benchmarks.harness.worker import Session

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------- statistics
def test_median_odd_even_and_unsorted():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([7.0]) == 7.0


def test_quantile_interpolates_like_numpy():
    data = [0.3, 1.7, 2.2, 9.0, 4.4, 5.1]
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert stats.quantile(data, q) == pytest.approx(float(np.percentile(data, 100 * q)))


def test_summarize_fields():
    s = stats.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s == {"n": 5, "median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0, "iqr": 2.0, "mean": 3.0}
    assert stats.iqr([5.0, 1.0, 3.0, 2.0, 4.0]) == 2.0
    assert stats.relative_spread(s) == pytest.approx(2.0 / 3.0)


def test_ratio_is_speedup_and_handles_missing():
    assert stats.ratio(10.0, 2.0) == 5.0  # baseline 10 s, target 2 s: 5x faster
    assert stats.ratio(None, 2.0) is None
    assert stats.ratio(1.0, None) is None
    assert stats.ratio(1.0, 0.0) is None


def test_paired_ratio_cancels_a_slow_phase_both_targets_met():
    # The target is 2x faster; a slow phase (x1.5) starts in round 2, after the target's sample of that
    # round and before the baseline's, so it covers three baseline samples and two of the target's.
    baseline = [2.0, 2.0, 3.0, 3.0, 3.0]
    target = [1.0, 1.0, 1.0, 1.5, 1.5]
    assert stats.ratio(stats.median(baseline), stats.median(target)) == 3.0  # medians: 3.0 / 1.0
    assert stats.paired_ratio(baseline, target) == 2.0  # pairs 2, 2, 3, 2, 2
    assert stats.paired_ratio([4.0, 6.0, 9.0], [2.0, 2.0]) == 2.5  # a target with fewer rounds pairs its first
    assert stats.paired_ratio([], [1.0]) is None and stats.paired_ratio([1.0], [0.0]) is None


@pytest.mark.parametrize("bad", [[], [1.0, math.nan]])
def test_stats_reject_empty_and_nan(bad):
    with pytest.raises(ValueError, match="summarize"):
        stats.summarize(bad)


def test_quantile_rejects_q_outside_unit_interval():
    with pytest.raises(ValueError, match="q in"):
        stats.quantile([1.0, 2.0], 1.5)


def test_calibration_and_repeat_planning():
    assert timing.calibrate_inner(0.001, 0.02) == 20
    assert timing.calibrate_inner(1.0, 0.02) == 1
    assert timing.calibrate_inner(0.0, 0.02, cap=50) == 50
    assert timing.plan_repeats(0.01, 1, 10, 6.0) == 10  # fits
    assert timing.plan_repeats(2.0, 1, 10, 6.0) == 3  # cut to the budget
    assert timing.plan_repeats(5.0, 1, 10, 6.0) == 3  # never below three
    assert timing.plan_repeats(5.0, 1, 1, 6.0) == 1  # unless fewer were asked for


# --------------------------------------------------------------------- schema
def _minimal_doc() -> dict:
    case = {"name": "c", "kind": "op", "params": {}, "items": 1, "item": "call"}
    ok = {"case": "c", "target": "t", "status": "ok", "reason": None, "samples_s": [1.0, 2.0],
          "stats": stats.summarize([1.0, 2.0])}
    return {"schema_version": schema.SCHEMA_VERSION, "suite": "ops", "title": "x", "created": "now", "elapsed_s": 1.0,
            "quick": True, "command": ["python"], "machine": {"cpu": "c", "cpu_count": 2, "load_average": None},
            "versions": {"python": "3", "numpy": "2"},
            "settings": {"repeats": 2, "warmup": 1, "threads": None, "seed": 0, "interleaved": True},
            "baselines": [], "device_tag": "cpu",
            "targets": [{"name": "t", "device": "cpu", "status": "ok", "reason": None, "info": {}}],
            "peaks": {}, "cases": [case], "results": [ok]}


def test_schema_accepts_a_valid_document():
    schema.validate(_minimal_doc())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("machine"), "missing required key 'machine'"),
    (lambda d: d.__setitem__("quick", "yes"), "$.quick: expected boolean"),
    (lambda d: d["results"][0].__setitem__("status", "fine"), "expected one of"),
    (lambda d: d["results"][0].__setitem__("samples_s", [-1.0]), "expected >= 0"),
    (lambda d: d["results"][0].__setitem__("samples_s", []), "status ok without samples"),
    (lambda d: d["results"][0].__setitem__("case", "other"), "not in $.cases"),
    (lambda d: d["results"][0].update(status="skipped", reason=None), "needs a reason"),
    (lambda d: d["cases"].append(dict(d["cases"][0])), "names must be unique"),
])
def test_schema_reports_violations(mutate, message):
    doc = _minimal_doc()
    mutate(doc)
    with pytest.raises(schema.SchemaError) as info:
        schema.validate(doc)
    assert message in str(info.value)


def test_schema_is_valid_json_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="cross-check with a full JSON Schema validator")
    jsonschema.Draft202012Validator.check_schema(schema.DOCUMENT)
    jsonschema.validate(_minimal_doc(), schema.DOCUMENT)


@pytest.mark.parametrize("quick", [True, False])
def test_every_suite_has_unique_valid_cases(quick):
    from benchmarks import suites

    for name in suites.NAMES:
        cases = suites.load(name).cases(quick)
        assert cases, name
        assert len({c["name"] for c in cases}) == len(cases), name
        for c in cases:
            assert schema.errors(c, schema.CASE) == [], (name, c["name"])


# ------------------------------------------------------------------ the worker
def test_worker_session_reports_skips_and_errors_per_case():
    session = Session("book-numpy")
    assert session.handle({"cmd": "probe"})["status"] == "ok"
    skipped = session.handle({"cmd": "setup", "case": {"name": "x", "kind": "op", "params": {"op": "nope",
                                                                                            "mode": "fwd"}}})
    assert skipped["status"] == "skipped" and "nope" in skipped["reason"]
    broken = session.handle({"cmd": "setup", "case": {"name": "x", "kind": "train", "params": {"model": "resnet",
                                                                                               "batch": 2}}})
    assert broken["status"] == "error" and "resnet" in broken["reason"]
    ok = session.handle({"cmd": "setup", "warmup": 1, "repeats": 2, "case": {
        "name": "m", "kind": "op", "params": {"op": "matmul", "a": [4, 3], "b": [3, 2], "mode": "fwd+bwd"}}})
    assert ok["status"] == "ok" and ok["repeats"] == 2 and ok["inner"] >= 1
    samples = session.handle({"cmd": "sample", "n": 2})["samples"]
    assert len(samples) == 2 and all(s > 0 for s in samples)


# ------------------------------------------------------------ end to end, tiny
def test_quick_run_writes_valid_results(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks", "ops", "--quick", "--repeats", "2", "--no-progress", "--strict",
           "--targets", "ember-numpy,book-numpy,ember-cuda", "--cases", "matmul 64,softmax_ce,conv2d",
           "--min-sample", "0.001", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(next(tmp_path.glob("ops-*.json")).read_text())  # ops-cpu.json, or ops-<gpu>.json
    schema.validate(doc)
    assert [c["name"] for c in doc["cases"]] == ["matmul 64x64x64 fwd+bwd", "conv2d SimpleConvNet.conv1 b32 fwd+bwd",
                                                 "softmax_ce (100, 10) fwd+bwd"]
    by = {(r["case"], r["target"]): r for r in doc["results"]}
    for case in doc["cases"]:
        for target in ("ember-numpy", "book-numpy"):
            r = by[(case["name"], target)]
            assert r["status"] == "ok", r
            assert len(r["samples_s"]) == 2 and r["stats"]["median"] > 0 and r["first_call_s"] > 0
            assert r["peak_rss_bytes"] > 0 and r["peak_rss_source"] in ("VmHWM", "ru_maxrss")
    cuda = next(t for t in doc["targets"] if t["name"] == "ember-cuda")
    assert cuda["status"] == "ok" or cuda["reason"]  # skipped with the reason where there is no GPU
    conv = by[("conv2d SimpleConvNet.conv1 b32 fwd+bwd", "ember-numpy")]
    assert conv["roofline"]["flops"] == pytest.approx(3 * 2 * 32 * 30 * 25 * 24 * 24)
    # one conv fwd+bwd allocates at least its output and the input gradient (float32)
    assert conv["memory"]["host_method"] == "tracemalloc"
    assert conv["memory"]["host_step_bytes"] >= 4 * (32 * 30 * 24 * 24 + 32 * 28 * 28)
    info = next(t for t in doc["targets"] if t["name"] == "ember-numpy")["info"]
    assert info["EMBER_CPU_KERNELS"] == "numpy" and "kernels_active" in info
    md = next(tmp_path.glob("ops-*.md")).read_text()
    assert "| case | ember-numpy | book-numpy |" in md and "Speed-up vs ember-numpy" in md
    assert "## Peak RSS of the worker during the case" in md
    assert next(tmp_path.glob("ops-*.png")).stat().st_size > 1000


# ---------------------------------------------- the book baseline computes the same thing
def _book_params_from_ember(model: em.nn.Module, net) -> None:
    """Copy ember's weights into the book net (Linear weights transposed to the book's (in, out))."""
    layers = [m for m in model.modules() if isinstance(m, (em.nn.Conv2d, em.nn.Linear))]
    book = [layer for layer in net.layers if "W" in layer.params]
    assert len(layers) == len(book)
    for src, dst in zip(layers, book):
        W = src.weight.numpy().astype(np.float64)
        dst.params["W"][...] = W.T if isinstance(src, em.nn.Linear) else W
        dst.params["b"][...] = src.bias.numpy()


def _reference_kernels():
    """ember's NumPy reference kernels for a block (no Numba JIT compile in a short test), where selectable."""
    try:
        from ember.backends.selection import use_cpu_kernels
    except ImportError:
        return contextlib.nullcontext()
    return use_cpu_kernels("numpy")


@pytest.mark.parametrize("name", ["simple_convnet", "two_layer_net"])
def test_book_net_gradients_match_ember(name):
    with _reference_kernels():
        _check_book_net_against_ember(name)


def _check_book_net_against_ember(name: str) -> None:
    dim, hidden = (1, 8, 8), 6
    em.manual_seed(3)
    if name == "simple_convnet":
        model = em.models.SimpleConvNet(dim, hidden_size=hidden, weight_init_std=0.3)
    else:
        model = em.models.TwoLayerNet(dim, hidden, 10, weight_init_std=0.3, activation="relu")
    model.to(em.float64)
    net = build_net(name, dim, 10, hidden, dtype=np.float64)
    _book_params_from_ember(model, net)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, *dim)), rng.integers(0, 10, 4)

    logits = model(em.tensor(x, dtype=em.float64))
    em.nn.functional.cross_entropy(logits, em.tensor(t)).backward()
    grads = net.gradient(x, t)
    np.testing.assert_allclose(net.predict(x), logits.numpy(), rtol=1e-12, atol=1e-14)
    z = logits.numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # The book's loss adds 1e-7 inside the log (cross_entropy_error's delta).
    assert net.loss(x, t) == pytest.approx(-np.log(p[np.arange(4), t] + 1e-7).mean(), rel=1e-12)
    layers = [m for m in model.modules() if isinstance(m, (em.nn.Conv2d, em.nn.Linear))]
    keys = [k for k in net.params if k.endswith(".W")]
    for layer, key in zip(layers, keys):
        gW = layer.weight.grad.numpy()
        np.testing.assert_allclose(grads[key], gW.T if isinstance(layer, em.nn.Linear) else gW, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(grads[key[:-1] + "b"], layer.bias.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (1, 2)])
def test_book_col2im_is_the_adjoint_of_im2col(stride, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    col = im2col(x, 3, 3, stride, pad)
    c = rng.standard_normal(col.shape)
    assert np.vdot(col, c) == pytest.approx(np.vdot(x, col2im(c, x.shape, 3, 3, stride, pad)), rel=1e-12)


@_reference_kernels()
def test_book_pooling_matches_ember_max_pool():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6))
    gy = rng.standard_normal((2, 3, 3, 3))
    pool = Pooling(2, 2, stride=2)
    xt = em.tensor(x, dtype=em.float64, requires_grad=True)
    y = em.nn.functional.max_pool2d(xt, 2, 2)
    y.backward(em.tensor(gy, dtype=em.float64))
    np.testing.assert_array_equal(pool.forward(x), y.numpy())
    np.testing.assert_array_equal(pool.backward(gy), xt.grad.numpy())


# ------------------------------------------------------------- report and plots
def _scaling_doc() -> dict:
    doc = _minimal_doc()
    doc.update(suite="scaling", display="throughput", baselines=["slow"])
    doc["targets"] = [{"name": n, "device": d, "status": "ok", "reason": None, "info": {}, "description": n}
                      for n, d in (("slow", "cpu"), ("fast", "cuda"))]
    doc["cases"], doc["results"] = [], []
    for b in (1, 4, 16):
        name = f"net b{b}"
        doc["cases"].append({"name": name, "kind": "train", "params": {}, "items": b, "item": "sample",
                             "group": "batch", "x": b, "work": {"flops": 1e9 * b}})
        for target, t in (("slow", 2.0 * b), ("fast", 1.0 * b)):
            s = stats.summarize([t, t * 1.1, t * 0.9])
            doc["results"].append({"case": name, "target": target, "status": "ok", "reason": None,
                                   "samples_s": [t, t * 1.1, t * 0.9], "stats": s, "per_item_s": t / b,
                                   "items_per_s": b / t, "first_call_s": 3.0, "roofline": None,
                                   "memory": {"host_step_bytes": 2**20 * b, "device_peak_bytes": None}})
    return doc


def test_report_and_plots_from_a_document(tmp_path):
    from benchmarks.harness.plots import plot
    from benchmarks.harness.report import headline, render

    doc = _scaling_doc()
    schema.validate(doc)
    md = render(doc)
    assert "## Speed-up vs slow" in md
    medians = md[md.index("## Speed-up vs slow"):md.index("Paired (median over rounds")]
    assert medians.count("| 2.00× |") == 3  # fast takes half the time of slow in every case
    assert "| net b4 | 8.00 s (7.20 s–8.80 s) | 4.00 s (3.60 s–4.40 s) |" in md
    paired = md[md.index("Paired (median over rounds"):md.index("## Throughput")]
    assert paired.count("| 2.00× |") == 3
    assert "## Throughput (samples/s)" in md and "| net b16 | 0.5 | 1 |" in md
    table = headline([doc])
    assert "| training step (samples/s) | slow | fast |" in table and "| net b1 | 0.5 | 1 |" in table
    png = plot(doc, tmp_path / "scaling.png")
    assert png.stat().st_size > 1000


def test_report_states_the_sample_length_cases_asked_for():
    """Training cases ask for 0.25 s samples; the header says so unless --min-sample overrode it."""
    from benchmarks.harness.report import render
    from benchmarks.suites import train

    doc = _scaling_doc()
    doc["settings"].update(min_sample_s=0.02, settle_s=0.2, case_min_sample=True)
    for case in doc["cases"]:
        case["min_sample_s"] = train.TRAIN_MIN_SAMPLE_S
    assert "each sample lasts at least 0.25 s, after a 0.2 s pause" in render(doc)
    doc["settings"]["case_min_sample"] = False  # the user's --min-sample wins
    assert "each sample lasts at least 0.02 s" in render(doc)
    assert all(c["min_sample_s"] == 0.25 for c in train.cases(quick=False))
