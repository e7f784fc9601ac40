"""Shared fixtures: seeded RNG, data-folder discovery, and backend parametrisation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy
import pytest

import ember as em

DATA_CANDIDATES = [os.environ.get("EMBER_DATA"), str(Path(__file__).resolve().parents[1].parent / "shared" / "data")]


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
