"""Shared fixtures: seeded RNG, data-folder discovery, and backend parametrisation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy
import pytest

# Compiled Numba kernels are cached outside the checkout, so only the first run pays compilation.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ember-numba-cache"))

import ember as em  # noqa: E402

# Property tests: the same examples on every run and no example database written into the checkout
# (a failure prints its reproduction blob).  EMBER_HYPOTHESIS_PROFILE=explore draws fresh random examples
# and keeps hypothesis' database, for hunting new failures locally.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # the property tests import hypothesis themselves and fail loudly without it
    _hypothesis_settings = None
if _hypothesis_settings is not None:
    _hypothesis_settings.register_profile("ember", derandomize=True, database=None, print_blob=True)
    _hypothesis_settings.register_profile("explore", derandomize=False)
    _hypothesis_settings.load_profile(os.environ.get("EMBER_HYPOTHESIS_PROFILE", "ember"))

def data_root() -> Path | None:
    """``$EMBER_DATA`` when it holds fashion-mnist/, else None: tests find real data only through it."""
    root = os.environ.get("EMBER_DATA")
    if root and (Path(root) / "fashion-mnist").is_dir():
        return Path(root)
    return None


@pytest.fixture
def fashion_dir() -> Path:
    """The data root holding fashion-mnist/; skips the test with a reason when it is absent."""
    root = data_root()
    if root is None:
        pytest.skip("Fashion-MNIST not found: set EMBER_DATA to the folder holding fashion-mnist/")
    return root


@pytest.fixture
def rng() -> numpy.random.Generator:
    return numpy.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed_ember() -> None:
    em.manual_seed(0)


def available_devices() -> list:
    """cpu always; cuda as a gpu-marked param that skips cleanly without a device."""
    return [
        "cpu",
        pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not em.cuda.is_available(),
                                                                         reason="CUDA/CuPy not available")]),
    ]


def _cpu_kernel_params() -> list:
    """numpy always; numba as a param that skips with a reason when numba is not installed."""
    from ember.backends.numba.backend import numba_installed

    return ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_installed(),
                                                                     reason="numba is not installed"))]


@pytest.fixture(params=_cpu_kernel_params())
def cpu_kernels(request) -> str:
    """Run the test once with the NumPy reference kernels and once with the Numba kernels."""
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels(request.param):
        yield request.param


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


def first_input_chain(y) -> list:
    """The backward node names from ``y.grad_fn`` down the first input edge that leads to another node."""
    names, node = [], y.grad_fn
    while node is not None:
        names.append(node.name())
        node = next((f for f, _ in node.next_functions if f is not None and hasattr(f, "generation")), None)
    return names


def assert_matches_torch(fn, torch_fn, inputs, seed: int = 3) -> None:
    """``fn(*inputs)`` and its input gradients against ``torch_fn`` on copies of the float64 inputs (None kept),
    back-propagating the same random upstream gradient through both."""
    torch = pytest.importorskip("torch")
    y = fn(*inputs)
    gy = numpy.random.default_rng(seed).normal(size=y.shape)
    (y * em.tensor(gy)).sum().backward()
    theirs = [None if t is None else torch.tensor(t.numpy(), requires_grad=True) for t in inputs]
    ty = torch_fn(*theirs)
    (ty * torch.tensor(gy)).sum().backward()
    numpy.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, other in zip(inputs, theirs):
        if ours is not None:
            numpy.testing.assert_allclose(ours.grad.numpy(), other.grad.numpy(), rtol=1e-10, atol=1e-12)
