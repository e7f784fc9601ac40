"""The ``softmax`` kernel kind: the reference kernels, and every backend reaching them as ``backend.softmax``."""

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from ember.backends import NUMBA_BACKEND, NUMPY_BACKEND
from ember.backends.reference import softmax as ref


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_forward_match_the_formula(rng, dtype, axis):
    x = (rng.normal(size=(3, 4, 5)) * 5).astype(dtype)
    z = x.astype(np.float64)
    want_log = z - z.max(axis=axis, keepdims=True)
    want_log = want_log - np.log(np.exp(want_log).sum(axis=axis, keepdims=True))
    tol = 2e-3 if dtype == np.float16 else 1e-6 if dtype == np.float32 else 1e-12
    y = ref.softmax_forward(x, axis)
    ly = ref.log_softmax_forward(x, axis)
    assert y.dtype == dtype and ly.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), np.exp(want_log), rtol=tol, atol=tol)
    np.testing.assert_allclose(ly.astype(np.float64), want_log, rtol=tol, atol=tol)


def test_large_logits_stay_finite():
    x = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    assert np.isfinite(ref.log_softmax_forward(x, 1)).all()
    np.testing.assert_array_equal(ref.softmax_forward(x, 1), [[1.0, 0.0, 0.0]])


def test_cpu_backends_serve_the_kind_with_the_reference():
    assert NUMPY_BACKEND.softmax is ref
    assert NUMBA_BACKEND.softmax is ref  # no Numba module for this kind: the reference falls through


def test_ops_run_on_the_kernels(rng):
    x = rng.normal(size=(2, 6))
    np.testing.assert_array_equal(F.softmax(em.tensor(x), axis=1).numpy(), ref.softmax_forward(x, 1))
    np.testing.assert_array_equal(F.log_softmax(em.tensor(x), axis=1).numpy(), ref.log_softmax_forward(x, 1))
