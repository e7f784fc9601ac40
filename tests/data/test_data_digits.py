"""Digits: scikit-learn's 8x8 digits with a seeded stratified split."""

import sys

import numpy as np
import pytest

from ember.data import DatasetError, Digits

pytest.importorskip(
    "sklearn", reason="Digits needs scikit-learn (a runtime dependency)"
)


@pytest.fixture(scope="module")
def split():
    return Digits(train=True), Digits(train=False)


def test_shapes_dtypes_range(split):
    train, test = split
    for ds in split:
        assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int64
        assert ds.images.shape == (len(ds), 1, 8, 8)
        assert ds.images.min() == 0.0 and ds.images.max() == 1.0
        assert len(ds.classes) == 10
    image, label = train[0]
    assert image.shape == (1, 8, 8) and isinstance(label, int)


def test_split_is_disjoint_and_complete(split):
    train, test = split
    assert len(train) + len(test) == 1797
    assert np.intersect1d(train.indices, test.indices).size == 0
    np.testing.assert_array_equal(
        np.union1d(train.indices, test.indices), np.arange(1797)
    )
    assert len(test) == pytest.approx(0.2 * 1797, abs=10)


def test_split_is_stratified(split):
    train, test = split
    fractions = np.bincount(test.labels) / (
        np.bincount(test.labels) + np.bincount(train.labels)
    )
    assert np.all(np.abs(fractions - 0.2) < 0.02)


def test_seed_determinism(split):
    train, _ = split
    np.testing.assert_array_equal(Digits(seed=0).indices, train.indices)
    assert not np.array_equal(Digits(seed=1).indices, train.indices)
    assert len(Digits(train=False, test_fraction=0.5)) == pytest.approx(898, abs=10)


def test_flatten():
    ds = Digits(flatten=True)
    assert ds.images.shape == (len(ds), 64)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": "0.2"}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=f"Digits: expected .*{pattern}"):
        Digits(**kwargs)


def test_missing_sklearn_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(DatasetError, match="pip install scikit-learn"):
        Digits()
