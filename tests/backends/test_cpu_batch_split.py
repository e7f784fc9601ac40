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
