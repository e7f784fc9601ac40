"""Subsets of datasets: :class:`Subset`, :func:`random_split`, and reading a sampler's indices."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class Subset:
    """The samples of ``dataset`` at ``indices``, in that order.

    When ``dataset`` offers ``arrays()`` (the DataLoader's fast path) so does the
    subset: its columns gathered at ``indices`` once, on first use.

    Raises:
        ValueError: an index is not an integer in ``[-len(dataset), len(dataset))``.
    """

    def __init__(self, dataset: Any, indices: Iterable[int]) -> None:
        n = len(dataset)
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if idx.size and (idx.ndim != 1 or idx.dtype.kind not in "iu"):
            raise ValueError(f"Subset: expected a 1-D sequence of int indices, got {idx.dtype} of shape {idx.shape}")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ValueError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of {n} samples, got "
                             f"[{idx.min()}, {idx.max()}]")
        self.dataset = dataset
        self.indices = [int(i) for i in idx]
        self._index_array = idx
        self._cached: tuple | None = None
        if callable(getattr(dataset, "arrays", None)):
            self.arrays = self._arrays  # only then: the loader tests for arrays()

    def _arrays(self) -> tuple[np.ndarray, ...]:
        if self._cached is None:
            self._cached = tuple(np.asarray(a)[self._index_array] for a in self.dataset.arrays())
        return self._cached

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __repr__(self) -> str:
        return f"Subset({type(self.dataset).__name__}, {len(self)} of {len(self.dataset)} samples)"


def random_split(dataset: Any, lengths: Sequence[float], generator: Any = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given sizes.

    Args:
        dataset: anything with ``__len__`` (and ``__getitem__`` or ``arrays()``).
        lengths: sample counts summing to ``len(dataset)``, or fractions summing to 1
            (each gets ``floor(fraction * n)``, the remainder goes one by one to the
            first subsets, as PyTorch does).
        generator: a seed (int), a ``numpy.random.Generator``, or None for ember's global RNG.

    Returns:
        One :class:`Subset` per length.

    Raises:
        ValueError: the lengths neither sum to ``len(dataset)`` nor are fractions summing to 1.
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths or any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                          or v < 0 for v in lengths):
        raise ValueError(f"random_split: expected non-negative lengths, got {lengths!r}")
    if all(isinstance(v, (int, np.integer)) for v in lengths):
        if sum(lengths) != n:
            raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, not to len(dataset)={n}")
        counts = [int(v) for v in lengths]
    else:
        if not math.isclose(sum(lengths), 1.0, abs_tol=1e-9) or any(v > 1 for v in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1] and sum to 1, got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    order = _rng(generator).permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, order[start:start + c]))
        start += c
    return out


def _rng(generator: Any) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None:
        from ember.generator import spawn_generator

        return spawn_generator()
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)) or generator < 0:
        raise ValueError(f"random_split: expected generator None, a seed >= 0 or a numpy Generator, "
                         f"got {generator!r}")
    return np.random.default_rng(int(generator))


def sampler_order(sampler: Any, n: int) -> np.ndarray:
    """One epoch of a sampler's indices as an int64 array, checked against a dataset of ``n`` samples."""
    order = np.fromiter((int(i) for i in sampler), dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"DataLoader: the sampler yielded index {order.min() if order.min() < 0 else order.max()}"
                         f", outside a dataset of {n} samples")
    return order
