"""TensorDataset and DataLoader: batching, shuffling, resuming, Tensor conversion.

Most tests drive ``loader.iter_arrays()`` (numpy batches) so they do not depend
on the ember core; Tensor conversion is tested with a stand-in ``from_numpy``
and, once the core provides it, with the real one.
"""

import json

import numpy as np
import pytest

from ember.data import DataLoader, TensorDataset
from ember.data import loader as loader_module


def _ds(n=10):
    return TensorDataset(
        np.arange(n), np.arange(n, dtype=np.float32).reshape(n, 1) * 10
    )


class ItemDataset:
    """A dataset without arrays(): forces the per-item fallback path."""

    def __init__(self, n):
        self.x = np.arange(n)
        self.y = np.arange(n, dtype=np.float32).reshape(n, 1) * 10

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _epoch(loader):
    return [tuple(a.copy() for a in batch) for batch in loader.iter_arrays()]


def _indices(batches):
    return np.concatenate([b[0] for b in batches]) if batches else np.array([], int)


# --- TensorDataset -------------------------------------------------------------


def test_tensor_dataset_items_and_arrays():
    ds = _ds(4)
    assert len(ds) == 4
    x, y = ds[2]
    assert x == 2 and y.tolist() == [20.0]
    assert ds.arrays()[0] is ds.arrays()[0]


def test_tensor_dataset_rejects_unequal_lengths():
    with pytest.raises(
        ValueError, match=r"TensorDataset: expected .*got shapes \(3,\), \(4, 2\)"
    ):
        TensorDataset(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match=r"shapes \(\)"):
        TensorDataset(np.float32(1.0))


def test_tensor_dataset_accepts_tensor_like():
    class FakeTensor:
        def numpy(self):
            return np.ones((3, 2), np.float32)

    ds = TensorDataset(FakeTensor(), [0, 1, 2])
    assert ds.arrays()[0].shape == (3, 2) and ds.arrays()[1].tolist() == [0, 1, 2]


# --- arguments and length ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": "4"}, "batch_size"),
        ({"shuffle": 1}, "shuffle"),
        ({"drop_last": "yes"}, "drop_last"),
        ({"seed": -1}, "seed"),
        ({"seed": 0.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(
        ValueError, match=f"DataLoader: expected {name} .*got {kwargs[name]!r}"
    ):
        DataLoader(_ds(), **kwargs)


def test_bad_dataset():
    with pytest.raises(ValueError, match="DataLoader: expected a dataset"):
        DataLoader(42)


@pytest.mark.parametrize(
    "n, bs, drop_last, expected",
    [
        (10, 3, False, 4),
        (10, 3, True, 3),
        (9, 3, True, 3),
        (0, 4, False, 0),
        (2, 5, True, 0),
    ],
)
def test_len(n, bs, drop_last, expected):
    loader = DataLoader(_ds(n), batch_size=bs, drop_last=drop_last)
    assert len(loader) == expected
    assert len(_epoch(loader)) == expected


# --- batching ------------------------------------------------------------------


def test_batch_shapes_and_order_without_shuffle():
    batches = _epoch(DataLoader(_ds(10), batch_size=4))
    assert [b[0].shape for b in batches] == [(4,), (4,), (2,)]
    assert [b[1].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    np.testing.assert_array_equal(_indices(batches), np.arange(10))
    assert batches[1][1].dtype == np.float32


def test_drop_last():
    batches = _epoch(DataLoader(_ds(10), batch_size=4, drop_last=True))
    assert [len(b[0]) for b in batches] == [4, 4]


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_visits_every_index_once_per_epoch(drop_last):
    loader = DataLoader(
        _ds(103), batch_size=10, shuffle=True, seed=7, drop_last=drop_last
    )
    first, second = _indices(_epoch(loader)), _indices(_epoch(loader))
    for seen in (first, second):
        if drop_last:
            assert len(seen) == 100 and len(np.unique(seen)) == 100
        else:
            np.testing.assert_array_equal(np.sort(seen), np.arange(103))
    assert not np.array_equal(first, second)  # a new permutation every epoch
    assert not np.array_equal(first[:100], np.arange(100))


def test_shuffle_determinism_per_seed():
    def run(seed):
        loader = DataLoader(_ds(50), batch_size=8, shuffle=True, seed=seed)
        return [_indices(_epoch(loader)) for _ in range(3)]

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1)[0], run(2)[0])


def test_columns_stay_aligned_when_shuffled():
    for x, y in DataLoader(_ds(30), batch_size=7, shuffle=True, seed=0).iter_arrays():
        np.testing.assert_array_equal(y[:, 0], x * 10)


def test_fallback_path_matches_fast_path():
    fast = _epoch(DataLoader(_ds(23), batch_size=5, shuffle=True, seed=3))
    slow = _epoch(DataLoader(ItemDataset(23), batch_size=5, shuffle=True, seed=3))
    for a, b in zip(fast, slow, strict=True):
        for col_a, col_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(col_a, col_b)
            assert col_a.dtype == col_b.dtype


def test_batches_are_copies():
    ds = _ds(6)
    x, _ = next(DataLoader(ds, batch_size=6).iter_arrays())
    x[:] = -1
    assert ds.arrays()[0].tolist() == list(range(6))


def test_unseeded_loader_uses_default_generator_hook(monkeypatch):
    monkeypatch.setattr(
        loader_module, "_default_generator", lambda: np.random.default_rng(11)
    )
    unseeded = _indices(_epoch(DataLoader(_ds(40), batch_size=4, shuffle=True)))
    seeded = _indices(_epoch(DataLoader(_ds(40), batch_size=4, shuffle=True, seed=11)))
    np.testing.assert_array_equal(unseeded, seeded)


def test_unseeded_loader_follows_manual_seed():
    em_random = pytest.importorskip("ember.random")
    if not hasattr(em_random, "manual_seed"):
        pytest.skip("ember.random has no manual_seed yet")

    def first_epoch():
        loader = DataLoader(_ds(40), batch_size=4, shuffle=True)
        em_random.manual_seed(123)  # after construction, before iteration: still counts
        return _indices(_epoch(loader))

    np.testing.assert_array_equal(first_epoch(), first_epoch())


def test_unshuffled_loader_never_touches_the_rng(monkeypatch):
    def boom():
        raise AssertionError("drew randomness without shuffle")

    monkeypatch.setattr(loader_module, "_default_generator", boom)
    loader = DataLoader(_ds(5), batch_size=2)
    _epoch(loader)
    assert loader.state_dict()["generator"] is None


# --- resuming ------------------------------------------------------------------


@pytest.mark.parametrize("stop_after", [0, 3, 7, 10])
def test_state_dict_resumes_exactly(stop_after):
    """Save after `stop_after` batches of epoch 2 (of 10); resume in a fresh loader."""
    reference = DataLoader(_ds(37), batch_size=4, shuffle=True, seed=5)
    expected = [_indices(_epoch(reference)) for _ in range(4)]

    run = DataLoader(_ds(37), batch_size=4, shuffle=True, seed=5)
    _epoch(run)
    it = run.iter_arrays()
    head = [next(it)[0] for _ in range(stop_after)]
    state = json.loads(json.dumps(run.state_dict()))  # must survive JSON
    assert (
        state["position"] == (stop_after % 10)
        and state["epoch"] == 1 + stop_after // 10
    )

    resumed = DataLoader(_ds(37), batch_size=4, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    tail = _indices(_epoch(resumed))
    epoch2 = np.concatenate(head + [tail]) if stop_after < 10 else np.concatenate(head)
    np.testing.assert_array_equal(epoch2, expected[1])
    if stop_after == 10:
        np.testing.assert_array_equal(tail, expected[2])
    later = [_indices(_epoch(resumed)) for _ in range(2 if stop_after < 10 else 1)]
    np.testing.assert_array_equal(later[-1], expected[3])


def test_load_state_dict_rejects_mismatches():
    state = DataLoader(_ds(10), batch_size=2, shuffle=True, seed=0).state_dict()
    with pytest.raises(
        ValueError, match=r"load_state_dict: expected dataset_len=12 .*got 10"
    ):
        DataLoader(_ds(12), batch_size=2, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match=r"expected batch_size=3 .*got 2"):
        DataLoader(_ds(10), batch_size=3, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="expected keys"):
        DataLoader(_ds(10), batch_size=2, shuffle=True).load_state_dict({"position": 0})
    with pytest.raises(ValueError, match="expected position in 0..5, got 9"):
        DataLoader(_ds(10), batch_size=2, shuffle=True).load_state_dict(
            dict(state, position=9)
        )


# --- Tensor conversion ----------------------------------------------------------


class FakeTensor:
    def __init__(self, array):
        self.array = array


def test_iter_converts_every_column(monkeypatch):
    monkeypatch.setattr(loader_module, "host_converter", lambda: FakeTensor)
    batches = list(DataLoader(_ds(5), batch_size=2))
    assert len(batches) == 3
    assert all(isinstance(t, FakeTensor) for batch in batches for t in batch)
    assert batches[0][1].array.shape == (2, 1)


def test_real_tensor_conversion():
    (x, y), *_ = DataLoader(_ds(6), batch_size=4, shuffle=True, seed=0)
    assert tuple(x.shape) == (4,) and tuple(y.shape) == (4, 1)
    assert str(y.dtype).endswith("float32")
    np.testing.assert_array_equal(y.numpy()[:, 0], x.numpy() * 10)
