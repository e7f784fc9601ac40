"""Subset, random_split and DataLoader(sampler=)."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.data import DataLoader, Subset, TensorDataset, random_split


class ItemsOnly:
    """A dataset without arrays(): the loader stacks items."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.array([i], dtype=np.float32), i


def tds(n=10):
    return TensorDataset(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


def test_subset_items_and_arrays():
    ds = tds()
    sub = Subset(ds, [7, 2, -1])
    assert len(sub) == 3
    np.testing.assert_array_equal(sub[1][1], 2)
    np.testing.assert_array_equal(sub.arrays()[1], [7, 2, 9])
    assert not hasattr(Subset(ItemsOnly(), [1]), "arrays")
    (x, y), = list(DataLoader(Subset(ItemsOnly(), [3, 4]), batch_size=2))
    np.testing.assert_array_equal(y.numpy(), [3, 4])
    with pytest.raises(ValueError, match="indices must lie"):
        Subset(ds, [10])
    with pytest.raises(ValueError, match="int indices"):
        Subset(ds, [0.5])


def test_random_split_lengths_fractions_and_seed():
    ds = tds(10)
    a, b = random_split(ds, [7, 3], generator=0)
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    a2, _ = random_split(ds, [7, 3], generator=np.random.default_rng(0))
    assert a2.indices == a.indices
    parts = random_split(ds, [0.33, 0.33, 0.34], generator=1)
    assert [len(p) for p in parts] == [4, 3, 3]  # floor 3,3,3 plus the remainder to the first
    em.manual_seed(5)
    first = random_split(ds, [0.5, 0.5])[0].indices
    em.manual_seed(5)
    assert random_split(ds, [0.5, 0.5])[0].indices == first
    with pytest.raises(ValueError, match="sum to"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="fractions"):
        random_split(ds, [0.5, 0.4])


def test_loader_with_sampler():
    ds = tds(10)
    order = [9, 0, 5, 5, 3]
    batches = [y.numpy().tolist() for _, y in DataLoader(ds, batch_size=2, sampler=order)]
    assert batches == [[9, 0], [5, 5], [3]]
    loader = DataLoader(ds, batch_size=2, sampler=order, drop_last=True)
    assert len(loader) == 2 and len(list(loader)) == 2
    gen_loader = DataLoader(ItemsOnly(), batch_size=3, sampler=range(9, -1, -3))
    assert [y.numpy().tolist() for _, y in gen_loader] == [[9, 6, 3], [0]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=order, shuffle=True)
    with pytest.raises(ValueError, match="iterable of indices"):
        DataLoader(ds, sampler=3)
    with pytest.raises(ValueError, match="outside a dataset of 10"):
        list(DataLoader(ds, sampler=[10]))
