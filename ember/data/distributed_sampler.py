"""``DistributedSampler``: each rank's share of a dataset's indices, as PyTorch's.

Every rank draws the same permutation (from ``seed + epoch``) and takes every
``num_replicas``-th index starting at its rank, so the shards are disjoint and
together cover the dataset. Without ``drop_last`` the permutation is padded
with its own first indices to a multiple of ``num_replicas`` (every rank gets
the same number of samples, so every rank runs the same number of steps and
collectives); with ``drop_last`` the tail is dropped instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np


class DistributedSampler:
    """Indices of one rank's shard; call :meth:`set_epoch` each epoch to reshuffle.

    Args:
        dataset: anything with ``len()``.
        num_replicas: number of ranks (default: the process group's world size).
        rank: this rank (default: the process group's rank).
        shuffle: permute the indices each epoch (same permutation on every rank).
        seed: base seed of the permutation; must be equal on every rank.
        drop_last: drop the tail instead of padding to an even split.

    Raises:
        ValueError: ``num_replicas < 1`` or ``rank`` outside ``[0, num_replicas)``.
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from ember import distributed

            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if int(num_replicas) < 1:
            raise ValueError(f"DistributedSampler: expected num_replicas >= 1, got {num_replicas}")
        if not 0 <= int(rank) < int(num_replicas):
            raise ValueError(f"DistributedSampler: expected 0 <= rank < {num_replicas}, got {rank}")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the permutation of ``seed + epoch``."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:  # pad by repeating the permutation (n may be smaller than the padding)
            order = np.resize(order, self.total_size)
        order = order[: self.total_size]
        return order[self.rank :: self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")
