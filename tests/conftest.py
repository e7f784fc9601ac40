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

DATA_CANDIDATES = [os.environ.get("EMBER_DATA")]  # tests find data only through $EMBER_DATA


def data_root() -> Path | None:
    """The folder holding fashion-mnist/ and mnist/, or None when absent."""
    for c in DATA_CANDIDATES:
        if c and (Path(c) / "fashion-mnist").is_dir():
            return Path(c)
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
    from ember.backends.numba_backend import numba_installed

    return ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_installed(),
                                                                     reason="numba is not installed"))]


@pytest.fixture(params=_cpu_kernel_params())
def cpu_kernels(request) -> str:
    """Run the test once with the NumPy reference kernels and once with the Numba kernels."""
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels(request.param):
        yield request.param
