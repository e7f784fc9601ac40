"""DistributedSampler: disjoint shards that cover the dataset, reshuffled by set_epoch."""

from __future__ import annotations

import numpy as np
import pytest

from ember.data import DistributedSampler


@pytest.mark.parametrize("n,world", [(10, 2), (11, 3), (7, 4), (3, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_are_even_and_cover_the_dataset(n: int, world: int, shuffle: bool) -> None:
    data = range(n)
    shards = [list(DistributedSampler(data, world, r, shuffle=shuffle, seed=3)) for r in range(world)]
    assert {len(s) for s in shards} == {-(-n // world)}
    assert set().union(*shards) == set(range(n))
    if n % world == 0:  # no padding: the shards are disjoint
        assert sum(len(s) for s in shards) == n == len(set().union(*shards))


def test_drop_last_gives_disjoint_equal_shards() -> None:
    shards = [DistributedSampler(range(11), 3, r, drop_last=True, seed=1).indices() for r in range(3)]
    assert all(len(s) == 3 for s in shards)
    flat = np.concatenate(shards)
    assert len(set(flat.tolist())) == 9


def test_every_rank_agrees_on_the_permutation_and_set_epoch_reshuffles() -> None:
    a = [DistributedSampler(range(20), 2, r, seed=5) for r in range(2)]
    first = [s.indices() for s in a]
    assert not set(first[0]) & set(first[1])
    for s in a:
        s.set_epoch(1)
    second = [s.indices() for s in a]
    assert not set(second[0]) & set(second[1])
    assert any((f != s).any() for f, s in zip(first, second))
    again = DistributedSampler(range(20), 2, 0, seed=5)
    again.set_epoch(1)
    np.testing.assert_array_equal(again.indices(), second[0])


def test_unshuffled_shards_interleave_in_order() -> None:
    assert list(DistributedSampler(range(6), 2, 1, shuffle=False)) == [1, 3, 5]


@pytest.mark.parametrize("world,rank", [(0, 0), (2, 2), (2, -1)])
def test_bad_rank_or_world_size_is_refused(world: int, rank: int) -> None:
    with pytest.raises(ValueError, match="DistributedSampler"):
        DistributedSampler(range(4), world, rank)


def test_without_a_process_group_the_defaults_say_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))
