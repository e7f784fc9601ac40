"""``class_index_range``: the labels' extremes and whether one equals ``ignore_index``, read in one compiled pass
on Numba (``cross_entropy``'s CPU check) and equal to the reference's three NumPy reductions."""

import numpy as np
import pytest

pytest.importorskip("numba")

import ember as em  # noqa: E402
from ember.backends.numba import nn  # noqa: E402
from ember.backends.reference import nn as ref  # noqa: E402


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int16])
@pytest.mark.parametrize("ignore", [-100, 3, 0, 1 << 40])
def test_matches_the_reference(rng, dtype, ignore):
    for size in (1, 7, 100, 1000):
        t = rng.integers(0, 10, size).astype(dtype)
        got = nn.class_index_range(t, ignore)
        assert got == ref.class_index_range(t, ignore)
        assert got == (int(t.min()), int(t.max()), bool((t == ignore).any()))
        assert all(type(v) is w for v, w in zip(got, (int, int, bool)))


def test_negative_and_strided_labels(rng):
    t = np.array([4, -7, 2, 9, -100], np.int64)
    assert nn.class_index_range(t, -100) == (-100, 9, True)
    assert nn.class_index_range(t[:4], -100) == (-7, 9, False)
    strided = np.arange(20, dtype=np.int64)[::3]  # not contiguous: the reference
    assert nn.class_index_range(strided, 9) == (0, 18, True)
    grid = rng.integers(-3, 5, (4, 6)).astype(np.int32)  # spatial labels
    assert nn.class_index_range(grid, 4) == ref.class_index_range(grid, 4)


def test_cross_entropy_still_reports_the_bad_index_and_takes_the_ignored_path():
    logits = em.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"cross_entropy: expected class indices in \[0, 3\) .* got -1 "
                                         r"\(indices ranged over \[-1, 5\]\)"):
        em.nn.functional.cross_entropy(logits, em.tensor([0, 5, -1, 2]))
    loss = em.nn.functional.cross_entropy(logits, em.tensor([0, -100, 1, 2]))  # the ignored target leaves the mean
    kept = em.nn.functional.cross_entropy(logits[[0, 2, 3]], em.tensor([0, 1, 2]))
    np.testing.assert_allclose(loss.item(), kept.item(), rtol=1e-6)
