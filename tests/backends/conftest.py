"""Fixtures of the backend kernel tests."""

import pytest


@pytest.fixture
def pool_parts(monkeypatch):
    """Flat kernels cut into parts on Numba's pool from one element on; yields the list of part counts used."""
    pytest.importorskip("numba", reason="numba is not installed")
    from ember.backends.cpu.threads import set_thread_policy
    from ember.backends.numba import pool_flat, pool_region

    if pool_region.POOL_THREADS < 2:
        pytest.skip("Numba's pool has one thread here (NUMBA_NUM_THREADS=1): nothing is cut into parts")
    monkeypatch.setattr(pool_flat, "MIN_POOL_ELEMENTS", 0)
    counts = []
    real = pool_flat.parts
    monkeypatch.setattr(pool_flat, "parts", lambda size: counts.append(real(size)) or counts[-1])
    previous = set_thread_policy(batch_workers=3)
    yield counts
    set_thread_policy(batch_workers=previous["batch_workers"])
