"""The load reading of ``ember.backends.cpu.core_load``, driven with synthetic ``/proc/stat`` samples (no sleeps)."""

import pytest

from ember.backends.cpu import core_load

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
        if len(sample) == 3:  # no run-queue wait readable
            sample = sample + (None,)
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


def _pause_windows(wait_growth: float, thread: int = 7) -> tuple[list, list]:
    """``(samples, their times)``: a 0.5 s window at 0.2 cores, then three pauses of ours in a row, in each
    of which others used 1.2 s and the reading thread waited ``wait_growth`` s on a run queue."""
    pause = core_load.STALE_S + 1.0
    t = [0.0, 0.5, 0.5 + pause, 0.5 + 2 * pause, 0.5 + 3 * pause]
    busy = [0.0, 0.6, 1.8, 3.0, 4.2]
    waits = [(thread, 0.01 + i * wait_growth) for i in range(5)]
    samples = [(t[i], busy[i], 0.5 if i else 0.0, waits[i]) for i in range(5)]
    return samples, t


def test_pauses_that_did_not_wait_for_a_core_are_all_dropped(fake_samples):
    """The run-queue wait says the thread slept: every paused window is dropped, not just the first."""
    samples, clock = fake_samples
    new, t = _pause_windows(wait_growth=0.001)
    samples += new
    core_load.other_cores_busy()
    for now in t[1:]:
        clock[0] = now
        assert core_load.other_cores_busy() == pytest.approx(0.2)  # 0.1 s of others' time over 0.5 s


def test_a_window_in_which_the_thread_waited_for_a_core_counts(fake_samples):
    """A starved thread (it waited a quarter of the window or more) sees the others' load at once."""
    samples, clock = fake_samples
    pause = core_load.STALE_S + 1.0
    new, t = _pause_windows(wait_growth=core_load.STARVED_WAIT_FRACTION * pause)
    samples += new
    core_load.other_cores_busy()
    clock[0] = t[1]
    assert core_load.other_cores_busy() == pytest.approx(0.2)
    clock[0] = t[2]
    assert core_load.other_cores_busy() == pytest.approx(1.2 / pause)


def test_waits_read_by_another_thread_fall_back_to_dropping_one_pause(fake_samples):
    samples, clock = fake_samples
    new, t = _pause_windows(wait_growth=0.0)
    for i in (2, 3, 4):  # from the third reading on another thread reads: its wait is not comparable at first
        new[i] = new[i][:3] + ((8, 0.0),)
    samples += new
    core_load.other_cores_busy()
    for now in t[1:]:
        clock[0] = now  # t[2]: unknown, dropped once; t[3], t[4]: that thread again, no wait: dropped
        assert core_load.other_cores_busy() == pytest.approx(0.2)
    assert core_load._state["skipped"]


def test_the_run_queue_wait_of_this_thread_reads_or_is_none():
    wait = core_load._read_wait()
    if wait is None:
        pytest.skip("no readable /proc/thread-self/schedstat on this system")
    assert wait[0] == core_load.threading.get_ident() and wait[1] >= 0


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
