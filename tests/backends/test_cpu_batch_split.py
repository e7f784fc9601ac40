"""ember.backends.cpu.batch_split: fixed slices of a batch, run on worker threads in order."""

from __future__ import annotations

import os
import threading

import pytest

from ember.backends.cpu import batch_split


def _covered(slices):
    return [i for s in slices for i in range(s.start, s.stop)]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 100])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_split_slices_cover_the_batch_in_order(n, workers):
    chunks = [slice(0, n)] if n < 5 else [slice(0, 3), slice(3, n)]
    slices = batch_split.split_slices(chunks, workers)
    assert _covered(slices) == list(range(n))
    assert all(s.stop > s.start for s in slices)
    if workers == 1:
        assert slices == chunks
    else:  # at most SLICES_PER_WORKER per worker from each chunk, and never empty
        assert len(slices) <= len(chunks) * workers * batch_split.SLICES_PER_WORKER


def test_split_slices_respects_min_items():
    slices = batch_split.split_slices([slice(0, 10)], 2, min_items=4)
    assert [(s.start, s.stop) for s in slices] == [(0, 5), (5, 10)]
    assert batch_split.split_slices([slice(0, 3)], 2, min_items=4) == [slice(0, 3)]


def test_map_slices_runs_on_worker_threads_and_keeps_order():
    names = set()
    lock = threading.Lock()

    def fn(s):
        with lock:
            names.add(threading.current_thread().name)
        return (s.start, s.stop)

    slices = [slice(i, i + 1) for i in range(8)]
    assert batch_split.map_slices(fn, slices, 2) == [(i, i + 1) for i in range(8)]
    caller = threading.current_thread().name
    assert names and all(name.startswith("ember-batch") or name == caller for name in names)
    assert batch_split.map_slices(fn, slices, 1) == [(i, i + 1) for i in range(8)]


def test_map_slices_reraises_after_every_slice_finished():
    done = []

    def fn(s):
        if s.start == 1:
            raise ValueError("conv2d: slice 1 failed")
        done.append(s.start)
        return s.start

    with pytest.raises(ValueError, match="conv2d: slice 1 failed"):
        batch_split.map_slices(fn, [slice(i, i + 1) for i in range(4)], 2)
    assert sorted(done) == [0, 2, 3]


def test_pool_is_remade_for_a_new_size_and_after_fork(monkeypatch):
    first = batch_split._executor(2)
    assert batch_split._executor(2) is first
    third = batch_split._executor(3)
    assert third is not first
    child_pid = os.getpid() + 1
    monkeypatch.setattr(batch_split.os, "getpid", lambda: child_pid)  # as seen in a forked child
    assert batch_split._executor(3) is not third


@pytest.mark.parametrize("shape", [((7, 5), (5, 3)), ((2, 9), (9, 4)), ((1, 4), (4, 2)), ((1, 3), (3, 1))])
def test_split_matmul_equals_numpy(monkeypatch, shape):
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape[0]), rng.normal(size=shape[1])
    calls = []
    real = batch_split.map_slices
    monkeypatch.setattr(batch_split, "map_slices", lambda fn, ss, w: calls.append(len(ss)) or real(fn, ss, w))
    got = batch_split.matmul_split(a, b, 3)
    np.testing.assert_allclose(got, a @ b, rtol=1e-13, atol=1e-13)  # BLAS may pick gemv for a block
    assert calls == ([] if max(shape[0][0], shape[1][1]) < 2 else [min(3, max(shape[0][0], shape[1][1]))])
    a32 = a.astype(np.float32)
    assert batch_split.matmul_split(a32, b.astype(np.float32), 3).dtype == np.float32


def test_linear_splits_its_products_over_workers(monkeypatch):
    """y, gx and gW of linear with the products split over 3 threads equal the inline ones."""
    np = pytest.importorskip("numpy")
    import ember as em
    import ember.nn.functional as F
    from ember.backends.cpu.threads import set_thread_policy

    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(9, 6)), rng.normal(size=(4, 6)), rng.normal(size=(4,))

    def run():
        xt, Wt = em.tensor(x, requires_grad=True), em.tensor(W, requires_grad=True)
        y = F.linear(xt, Wt, em.tensor(b))
        y.backward(em.tensor(np.cos(y.numpy())))
        return y.numpy(), xt.grad.numpy(), Wt.grad.numpy()

    whole = run()
    calls = []
    real = batch_split.map_slices
    monkeypatch.setattr(batch_split, "map_slices", lambda fn, ss, w: calls.append(w) or real(fn, ss, w))
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 0)
    previous = set_thread_policy(batch_workers=3)
    try:
        split = run()
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    from ember.backends.selection import cpu_kernels

    # y split over the workers, then gx and gW side by side as one pair (the reference kernels run inline)
    assert calls == ([3, 3] if cpu_kernels() == "numba" else [])
    for a, c in zip(whole, split):
        np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-13)


def test_matmul_pair_runs_balanced_products_side_by_side(monkeypatch):
    """Two similar products go to one map over the pair; a lopsided pair is split product by product."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(2)
    a1, b1 = rng.normal(size=(8, 5)), rng.normal(size=(5, 6))
    a2, b2 = rng.normal(size=(6, 5)).T, rng.normal(size=(6, 7))  # a transposed operand, as gW's
    calls = []
    real = batch_split.map_slices
    monkeypatch.setattr(batch_split, "map_slices", lambda fn, ss, w: calls.append(len(ss)) or real(fn, ss, w))
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 0)
    p1, p2 = batch_split.matmul_pair((a1, b1), (a2, b2), 2)
    assert calls == [2]  # 240 vs 210 multiply-adds: one map over the two products
    np.testing.assert_array_equal(p1, a1 @ b1)
    np.testing.assert_array_equal(p2, a2 @ b2)
    calls.clear()
    big = rng.normal(size=(40, 5))
    p1, p2 = batch_split.matmul_pair((big, b1), (a2, b2), 2)  # 1200 vs 210: too lopsided to pair
    assert calls == [2, 2]  # each product split over the two workers instead
    np.testing.assert_allclose(p1, big @ b1, rtol=1e-14)
    np.testing.assert_allclose(p2, a2 @ b2, rtol=1e-14)
    calls.clear()
    assert [p.shape for p in batch_split.matmul_pair((a1, b1), (a2, b2), 1)] == [(8, 6), (5, 7)]
    assert calls == []  # one worker: inline
