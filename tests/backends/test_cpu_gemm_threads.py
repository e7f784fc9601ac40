"""Linear's products on OpenBLAS threads while the machine is idle, the batch split otherwise.

The load reading is driven with synthetic ``/proc/stat`` samples (no sleeps);
the products must be the same bits on every path.
"""

import numpy as np
import pytest

from ember.backends.cpu import batch_split, core_load, gemm_threads, threads

STAT = b"""cpu  900 0 300 5000 20 0 10 5 0 0
cpu0 400 0 100 2500 10 0 5 5 0 0
cpu1 500 0 200 2500 10 0 5 0 0 0
intr 1 2 3
ctxt 42
cpu_not_a_row 1 2 3
"""


def test_busy_ticks_count_our_cores_without_idle_and_iowait():
    assert core_load.parse_busy_ticks(STAT, frozenset({b"cpu0"})) == 400 + 100 + 5 + 5
    assert core_load.parse_busy_ticks(STAT, frozenset({b"cpu0", b"cpu1"})) == 510 + 705
    assert core_load.parse_busy_ticks(STAT, frozenset({b"cpu7"})) is None


@pytest.fixture
def fake_samples(monkeypatch):
    """Feed ``other_cores_busy`` a list of ``(time, busy s, own s)`` samples; the clock follows them."""
    samples: list = []
    clock = [0.0]
    monkeypatch.setattr(core_load, "_state", {"sample": None, "busy": None, "pid": None, "cpus": None, "hz": None,
                                                   "skipped": False})

    def read():
        core_load._state["pid"] = core_load.os.getpid()
        sample = samples.pop(0)
        clock[0] = sample[0]
        return sample

    monkeypatch.setattr(core_load, "_read_sample", read)
    monkeypatch.setattr(core_load.time, "monotonic", lambda: clock[0])
    return samples, clock


def test_other_cores_busy_is_busy_time_minus_our_own_per_second(fake_samples):
    samples, clock = fake_samples
    samples += [(10.0, 100.0, 50.0), (10.5, 100.9, 50.6), (10.9, 101.0, 51.0)]
    assert core_load.other_cores_busy() is None  # no window yet
    clock[0] = 10.1  # within the window: no new reading
    assert core_load.other_cores_busy() is None and len(samples) == 2
    clock[0] = 10.5
    assert core_load.other_cores_busy() == pytest.approx((0.9 - 0.6) / 0.5)
    clock[0] = 10.9
    assert core_load.other_cores_busy() == 0.0  # we used more than the counters moved: clipped at 0


def test_a_window_spanning_a_pause_is_dropped_once_and_the_last_figure_stands(fake_samples):
    samples, clock = fake_samples
    pause = core_load.STALE_S + 1.0
    t = [0.0, 0.5, 0.5 + pause, 0.8 + pause, 0.8 + 2 * pause, 0.8 + 3 * pause]
    # (time, busy seconds of our cores, our own CPU seconds)
    samples += [(t[0], 0.0, 0.0), (t[1], 0.6, 0.5), (t[2], 2.0, 0.5), (t[3], 2.3, 0.8), (t[4], 3.5, 0.8),
                (t[5], 4.7, 0.8)]
    core_load.other_cores_busy()
    for now, expected in [(t[1], 0.2), (t[2], 0.2), (t[3], 0.0), (t[4], 0.0), (t[5], 1.2 / pause)]:
        clock[0] = now  # t[2], t[4]: a pause of ours while others ran, dropped; t[5]: a second in a row counts
        assert core_load.other_cores_busy() == pytest.approx(expected)


def test_unreadable_counters_give_none(monkeypatch):
    monkeypatch.setattr(core_load, "_state", {"sample": None, "busy": None, "pid": None, "cpus": None, "hz": None,
                                                   "skipped": False})
    monkeypatch.setattr(core_load, "_STAT", "/nonexistent/stat")
    assert core_load.other_cores_busy() is None


def test_the_real_counters_read_a_plausible_load():
    """On Linux two readings a window apart give a figure between 0 and the core count."""
    if core_load._read_sample() is None:
        pytest.skip("no readable /proc/stat on this system")
    first = core_load._read_sample()
    assert first[1] >= 0 and first[2] >= 0


@pytest.fixture
def policy():
    previous = threads.set_thread_policy(idle_blas_threads=2, blas_threads=1, batch_workers=2)
    yield
    threads.set_thread_policy(idle_blas_threads=previous["idle_blas_threads"],
                              blas_threads=previous["blas_threads"] or 1, batch_workers=previous["batch_workers"])


@pytest.mark.parametrize("busy,macs,expected", [
    (0.0, gemm_threads.BURST_MIN_MACS, 2),
    (gemm_threads.IDLE_MAX_OTHER_CORES, gemm_threads.BURST_MIN_MACS, 2),
    (1.0, gemm_threads.BURST_MIN_MACS, 1),
    (None, gemm_threads.BURST_MIN_MACS, 1),
    (0.0, gemm_threads.BURST_MIN_MACS - 1, 1),
])
def test_burst_only_for_large_products_on_an_idle_machine(policy, monkeypatch, busy, macs, expected):
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: busy)
    assert gemm_threads.burst_threads(macs) == expected


def test_no_burst_when_the_policy_says_one_thread(policy, monkeypatch):
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    threads.set_thread_policy(idle_blas_threads=1)
    assert gemm_threads.burst_threads(1 << 40) == 1


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.parametrize("shapes", [
    ((128, 784), (784, 512)),  # the MLP's first layer, forward: threaded OpenBLAS sums it differently here
    ((512, 128), (128, 784)),  # its weight gradient
    ((100, 256), (256, 600)),  # more columns than rows: the split cuts columns
])
def test_burst_keeps_the_bits_of_the_split_and_restores_the_limit(policy, monkeypatch, rng, shapes):
    a = rng.normal(size=shapes[0]).astype(np.float32)
    b = rng.normal(size=shapes[1]).astype(np.float32)
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 0)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_same_bits", {})
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 1.0)
    split = gemm_threads.matmul_split(a, b, 2)
    split_pair = gemm_threads.matmul_pair((a, b), (b.T, a.T), 2)
    assert not gemm_threads._same_bits  # busy: nothing was tried
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    for _ in range(2):  # the first call checks the layout, the second uses the verdict
        assert gemm_threads.matmul_split(a, b, 2).tobytes() == split.tobytes()
        assert set(_blas_threads()) <= {1}  # set back to the policy's limit
        pair = gemm_threads.matmul_pair((a, b), (b.T, a.T), 2)
        assert all(x.tobytes() == y.tobytes() for x, y in zip(pair, split_pair))
    assert len(gemm_threads._same_bits) == 2


def test_a_layout_whose_bits_differ_stays_on_the_split(policy, monkeypatch, rng):
    """A stand-in for threaded BLAS that rounds differently: the verdict keeps it off for that layout."""
    a = rng.normal(size=(8, 8)).astype(np.float32)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_same_bits", {})
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    calls = []

    def off_by_one_ulp(count, products):
        calls.append(count)
        return [np.nextafter(x @ y, np.inf) for x, y in products]

    monkeypatch.setattr(gemm_threads, "_on_blas_threads", off_by_one_ulp)
    for _ in range(3):
        assert gemm_threads.matmul_split(a, a, 2).tobytes() == batch_split.matmul_split(a, a, 2).tobytes()
    assert calls == [2] and list(gemm_threads._same_bits.values()) == [False]


def test_set_blas_threads_now_changes_the_pool():
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS pool threadpoolctl can control")
    try:
        assert threads.set_blas_threads_now(2)
        assert 2 in _blas_threads()  # NumPy's pool (another library loaded later is not touched)
    finally:
        threads.set_blas_threads_now(before[0])


def test_idle_blas_default_and_its_errors(monkeypatch):
    for var in (*threads.BLAS_ENV_VARS, threads.THREADS_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads._default_idle_blas_threads() == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert threads._default_idle_blas_threads() == 1  # the user's BLAS setting is kept
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv(threads.THREADS_ENV_VAR, "2")
    assert threads._default_idle_blas_threads() == 1  # ember's own setting: one BLAS thread per worker
    monkeypatch.delenv(threads.THREADS_ENV_VAR)
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    assert threads._default_idle_blas_threads() == 1  # big machines leave BLAS alone
    with pytest.raises(ValueError, match="set_thread_policy: expected idle_blas_threads >= 1, got 0"):
        threads.set_thread_policy(idle_blas_threads=0)
    assert "idle_blas_threads" in threads.thread_policy()


def test_another_thread_gets_the_splits_bits_whether_or_not_it_may_set_blas(policy, monkeypatch, rng):
    """threadpoolctl lets one thread set OpenBLAS's limit; a product from another never runs unchecked."""
    import threading

    a = rng.normal(size=(64, 96)).astype(np.float32)
    b = rng.normal(size=(96, 80)).astype(np.float32)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_same_bits", {})
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    out = []
    worker = threading.Thread(target=lambda: out.extend(gemm_threads.matmul_split(a, b, 2) for _ in range(2)))
    worker.start()
    worker.join()
    expected = batch_split.matmul_split(a, b, 2).tobytes()
    assert [o.tobytes() for o in out] == [expected, expected]
    assert set(_blas_threads()) <= {1}


def test_a_long_shared_axis_is_summed_over_the_same_pieces_busy_or_idle(policy, monkeypatch, rng):
    """K over CHUNK_K: pieces fixed by shape and policy, so the bits do not depend on the load."""
    a = rng.normal(size=(96, 1100)).astype(np.float32)
    b = rng.normal(size=(1100, 64)).astype(np.float32)
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 0)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_same_bits", {})
    monkeypatch.setattr(gemm_threads, "_whole_ok", {})
    monkeypatch.setattr(gemm_threads, "_probe_whole", lambda a, b, workers: False)  # as for the MLP's 784
    pieces = gemm_threads._k_pieces(a, b, 2)
    assert [(k.start, k.stop) for k in pieces] == [(0, 366), (366, 733), (733, 1100)]
    expected = sum((batch_split.matmul_split(a[:, k], b[k], 2) for k in pieces[1:]),
                   start=batch_split.matmul_split(a[:, pieces[0]], b[pieces[0]], 2))
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 1.0)
    busy = gemm_threads.matmul_split(a, b, 2)
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    idle = [gemm_threads.matmul_split(a, b, 2) for _ in range(3)]  # check, then the verdict
    assert all(r.tobytes() == expected.tobytes() for r in [busy, *idle])
    assert len(gemm_threads._same_bits) == 1
    np.testing.assert_allclose(busy, a @ b, rtol=1e-4, atol=1e-3)
    threads.set_thread_policy(idle_blas_threads=1)  # no BLAS threads: nothing to agree with, one piece
    assert gemm_threads._k_pieces(a, b, 2) is None
    assert gemm_threads._k_pieces(a[:, :512], b[:512], 2) is None  # short K: whole


def test_pieces_whose_threaded_bits_differ_keep_the_pieces_on_the_split(policy, monkeypatch, rng):
    a = rng.normal(size=(8, 600)).astype(np.float32)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_same_bits", {})
    monkeypatch.setattr(gemm_threads, "_whole_ok", {})
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    monkeypatch.setattr(gemm_threads, "_on_blas_threads",
                        lambda count, products: [np.nextafter(x @ y, np.inf) for x, y in products])
    results = [gemm_threads.matmul_split(a, a.T.copy(), 2).tobytes() for _ in range(3)]
    assert len(set(results)) == 1 and list(gemm_threads._same_bits.values()) == [False]


def test_a_layout_the_probe_finds_in_order_is_computed_whole(policy, monkeypatch, rng):
    a = rng.normal(size=(16, 700)).astype(np.float32)
    b = rng.normal(size=(700, 24)).astype(np.float32)
    monkeypatch.setattr(gemm_threads, "BURST_MIN_MACS", 0)
    monkeypatch.setattr(gemm_threads, "_whole_ok", {})
    probes = []
    monkeypatch.setattr(gemm_threads, "_probe_whole", lambda a, b, workers: probes.append(a.shape) or True)
    assert gemm_threads._k_pieces(a, b, 2) is None and gemm_threads._k_pieces(a, b, 2) is None
    assert probes == [(16, 700)]  # once per layout


def _reversed_k(count, products):
    """A stand-in for threaded BLAS that sums K backwards: other bits on general data, the same on zeros."""
    return [x[:, ::-1] @ y[::-1] for x, y in products]


@pytest.mark.parametrize("make,expected", [
    (lambda s: np.zeros(s, np.float32), False),  # zeros agree in any order: the probe must not use them
    (lambda s: np.ones(s, np.float32), False),
])
def test_the_probe_uses_random_data_of_the_layout(policy, monkeypatch, make, expected):
    monkeypatch.setattr(gemm_threads, "_on_blas_threads", _reversed_k)
    a, b = make((32, 600)), np.asfortranarray(make((600, 40)))
    assert gemm_threads._probe_whole(a, b, 2) is expected
    monkeypatch.setattr(gemm_threads, "_on_blas_threads", lambda count, products: [x @ y for x, y in products])
    monkeypatch.setattr(batch_split, "MIN_SPLIT_MACS", 1 << 40)  # the split computes it whole too
    assert gemm_threads._probe_whole(a, b, 2) is True


def test_the_probe_answers_false_when_it_cannot_tell(policy, monkeypatch, rng):
    a = rng.normal(size=(8, 600)).astype(np.float32)
    b = rng.normal(size=(600, 8)).astype(np.float32)
    monkeypatch.setattr(gemm_threads, "_on_blas_threads", lambda count, products: None)  # threads not raised
    assert gemm_threads._probe_whole(a, b, 2) is False
    monkeypatch.setattr(gemm_threads, "_on_blas_threads", lambda count, products: [x @ y for x, y in products])
    assert gemm_threads._probe_whole(a[:, ::2], b[::2], 2) is False  # neither C- nor F-contiguous
    monkeypatch.setattr(gemm_threads, "MAX_PROBE_ELEMENTS", 10)
    assert gemm_threads._probe_whole(a, b, 2) is False  # too large to copy
