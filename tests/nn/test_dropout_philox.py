"""Dropout on the Philox stream: the op's masks, the generator's seeding, state round trips and forks."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember.backends.reference import philox


def _mask_of(y: em.Tensor, x: np.ndarray) -> np.ndarray:
    return y.numpy() / x


def test_cpu_mask_is_the_twin_from_seed_and_offset():
    em.manual_seed(1234)
    x = np.full((6, 7), 2.0, dtype=np.float32)
    a, b = F.dropout(em.tensor(x), 0.4), F.dropout(em.tensor(x), 0.4)
    state = philox.new_state(1234)
    np.testing.assert_array_equal(_mask_of(a, x), philox.dropout_mask((6, 7), 0.4, state, np.float32))
    np.testing.assert_array_equal(_mask_of(b, x), philox.dropout_mask((6, 7), 0.4, state, np.float32))
    assert em.default_philox_generator().offset("cpu") == 2 * 11  # ceil(42 / 4) blocks per mask


def test_manual_seed_restarts_the_stream_in_place():
    gen = em.default_philox_generator()
    em.manual_seed(7)
    x = em.ones(5, 9)
    first = F.dropout(x, 0.5).numpy()
    live = gen.state("cpu", np)
    assert not np.array_equal(first, F.dropout(x, 0.5).numpy())  # the offset moved on
    em.manual_seed(7)
    assert gen.state("cpu", np) is live and int(live[1]) == 0  # the same array, rewritten (captures see it)
    np.testing.assert_array_equal(first, F.dropout(x, 0.5).numpy())
    em.manual_seed(8)
    assert not np.array_equal(first, F.dropout(x, 0.5).numpy())


def test_rng_state_round_trips_through_a_checkpoint_file(tmp_path):
    em.manual_seed(3)
    x = em.ones(4, 6)
    F.dropout(x, 0.3)
    em.rand(2)
    em.save({"rng": em.get_rng_state()}, tmp_path / "ck.npz")
    want = (F.dropout(x, 0.3).numpy(), em.rand(3).numpy())
    em.manual_seed(99)
    F.dropout(x, 0.3)
    em.set_rng_state(em.load(tmp_path / "ck.npz")["rng"])
    got = (F.dropout(x, 0.3).numpy(), em.rand(3).numpy())
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_an_older_numpy_only_rng_state_still_loads():
    em.manual_seed(5)
    legacy = em.get_rng_state()["numpy"]
    want = em.rand(3).numpy()
    em.set_rng_state(legacy)
    np.testing.assert_array_equal(em.rand(3).numpy(), want)


def test_generator_state_holds_seed_and_offsets_and_fork_is_independent():
    gen = em.PhiloxGenerator(2**64 + 11)  # keys are mod 2**64
    assert gen.initial_seed() == 11
    x = em.ones(3, 3)
    F.dropout(x, 0.5, generator=gen)
    saved = gen.get_state()
    assert saved == {"seed": 11, "offsets": {"cpu": 3}}
    fork = gen.clone()
    a = F.dropout(x, 0.5, generator=fork).numpy()
    assert gen.offset("cpu") == 3 and fork.offset("cpu") == 6  # drawing from the fork leaves the original
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=gen).numpy(), a)
    gen.set_state(saved)
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=gen).numpy(), a)
    restored = em.PhiloxGenerator(0)
    restored.set_state(saved)  # before any use: the offset waits for the device's first draw
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=restored).numpy(), a)
    with pytest.raises(ValueError, match="PhiloxGenerator.set_state: expected a dict"):
        gen.set_state({"seed": 1})
    with pytest.raises(ValueError, match="non-negative integer seed"):
        em.PhiloxGenerator(-1)


def test_int_seed_is_a_fixed_mask_and_numpy_generator_draws_a_key_per_call():
    x = np.full((4, 10), 1.0)
    y = F.dropout(em.tensor(x), 0.5, generator=9).numpy()
    np.testing.assert_array_equal(y, F.dropout(em.tensor(x), 0.5, generator=9).numpy())
    np.testing.assert_array_equal(y, philox.dropout_mask((4, 10), 0.5, philox.new_state(9), np.float64))
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    a, b = F.dropout(em.tensor(x), 0.5, generator=g1).numpy(), F.dropout(em.tensor(x), 0.5, generator=g1).numpy()
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, F.dropout(em.tensor(x), 0.5, generator=g2).numpy())
    with pytest.raises(ValueError, match="dropout: expected a non-negative int seed, got -2"):
        F.dropout(em.tensor(x), 0.5, generator=-2)


def test_gradient_uses_the_forward_mask():
    em.manual_seed(0)
    x = em.tensor(np.linspace(-1, 1, 24).reshape(4, 6), requires_grad=True)
    y = F.dropout(x, 0.25)
    y.sum().backward()
    mask = philox.dropout_mask((4, 6), 0.25, philox.new_state(0), np.float64)
    np.testing.assert_array_equal(x.grad.numpy(), mask)
    np.testing.assert_array_equal(y.numpy(), x.numpy() * mask)


def test_a_replayed_tape_continues_the_stream():
    """Each replay of a captured step draws the next mask, as eager calls would."""
    em.manual_seed(21)
    x = em.ones(8, 5)
    g = em.graphs.Graph()
    with em.graphs.graph(g):
        out = F.dropout(x, 0.5)
    masks = [out.numpy().copy()]
    for _ in range(3):
        g.replay()
        masks.append(out.numpy().copy())
    state = philox.new_state(21)
    for m in masks:
        np.testing.assert_array_equal(m, philox.dropout_mask((8, 5), 0.5, state, np.float32))
    assert len({m.tobytes() for m in masks}) == 4
