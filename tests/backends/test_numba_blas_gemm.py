"""``blas_gemm.gemm``: NumPy's own CBLAS called from compiled code, and its ``numpy.dot`` stand-in.

Compared with NumPy's ``@`` within float32/float64 rounding (another BLAS
kernel may sum in another order), for every transpose combination, row-strided
views, ``beta`` accumulation, and the shape and layout errors.
"""

import ctypes

import numpy as np
import pytest

pytest.importorskip("numba")
from ember.backends.numba import blas_gemm  # noqa: E402

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _op(a, trans):
    return a.T if trans else a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n", [(16, 144, 784), (3, 5, 7), (1, 1, 1), (64, 0, 9)])
def test_gemm_matches_numpy(rng, dtype, trans_a, trans_b, m, k, n):
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype=dtype)  # beta = 0 must ignore what c held, NaN included
    blas_gemm.gemm(a, b, c, trans_a, trans_b, 0.0)
    np.testing.assert_allclose(c, _op(a, trans_a) @ _op(b, trans_b), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beta_accumulates_into_c(rng, dtype):
    a = rng.normal(size=(40, 30)).astype(dtype)
    b = rng.normal(size=(20, 30)).astype(dtype)
    c0 = rng.normal(size=(40, 20)).astype(dtype)
    c = c0.copy()
    blas_gemm.gemm(a, b, c, False, True, 1.0)
    np.testing.assert_allclose(c, c0 + a @ b.T, **TOL[dtype])
    c = c0.copy()
    blas_gemm.gemm(a, b, c, False, True, 0.5)
    np.testing.assert_allclose(c, 0.5 * c0 + a @ b.T, **TOL[dtype])


def test_row_strided_views_are_read_and_written_in_place(rng):
    big_a = rng.normal(size=(12, 40)).astype(np.float32)
    big_b = rng.normal(size=(30, 50)).astype(np.float32)
    big_c = np.zeros((12, 70), dtype=np.float32)
    a, b, c = big_a[:, 5:35], big_b[:, 10:19], big_c[:, 3:12]  # unit inner stride, longer rows
    blas_gemm.gemm(a, b, c, False, False, 0.0)
    np.testing.assert_allclose(c, a @ b, rtol=2e-5, atol=2e-5)
    assert not big_c[:, :3].any() and not big_c[:, 12:].any()  # nothing written outside the view


def test_bad_shapes_and_layouts_raise(rng):
    a = rng.normal(size=(4, 5)).astype(np.float32)
    b = rng.normal(size=(6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="shapes"):
        blas_gemm.gemm(a, b, np.empty((4, 3), np.float32), False, False, 0.0)
    with pytest.raises(ValueError, match="unit stride"):
        blas_gemm.gemm(a[:, ::2], a[:, ::2].T.copy(), np.empty((4, 4), np.float32), False, False, 0.0)
    with pytest.raises(ValueError, match="one dtype"):
        blas_gemm.gemm(a, a.T.astype(np.float64), np.empty((4, 4), np.float32), False, False, 0.0)
    overlapping = np.lib.stride_tricks.as_strided(a, shape=(4, 5), strides=(4, 4))
    with pytest.raises(ValueError, match="overlap"):
        blas_gemm.gemm(overlapping, a.T.copy(), np.empty((4, 4), np.float32), False, False, 0.0)


@pytest.mark.parametrize("dtype,real,ctype", [(np.float32, "float32", ctypes.c_float),
                                              (np.float64, "float64", ctypes.c_double)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_the_numpy_dot_stand_in_has_cblas_semantics(rng, dtype, real, ctype, trans_a, trans_b):
    """The C function used where NumPy has no ILP64 CBLAS, called through ctypes like any cblas_?gemm."""
    from numba import types

    address = blas_gemm._fallback(getattr(types, real))
    i64, p = ctypes.c_int64, ctypes.c_void_p
    fn = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, i64, i64, i64, ctype, p, i64,
                          p, i64, ctype, p, i64)(address)
    m, k, n = 5, 7, 3
    big_a = rng.normal(size=(k + 2, m + 4) if trans_a else (m + 2, k + 4)).astype(dtype)
    a = big_a[:k, :m] if trans_a else big_a[:m, :k]
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    c = c0.copy()
    codes = {False: blas_gemm.NO_TRANS, True: blas_gemm.TRANS}
    fn(blas_gemm.ROW_MAJOR, codes[trans_a], codes[trans_b], m, n, k, 2.0, a.ctypes.data, big_a.shape[1],
       b.ctypes.data, b.shape[1], 0.5, c.ctypes.data, n)
    np.testing.assert_allclose(c, 2.0 * (_op(a, trans_a) @ _op(b, trans_b)) + 0.5 * c0, **TOL[dtype])


def test_numpy_blas_is_found_on_numpy_wheels():
    """NumPy's PyPI wheels export the ILP64 CBLAS; other builds use the stand-in (and this says so)."""
    import numpy

    info = getattr(numpy.__config__, "CONFIG", {})
    blas = str(info.get("Build Dependencies", {}).get("blas", {}).get("name", ""))
    if blas != "scipy-openblas":
        pytest.skip(f"NumPy is built against {blas or 'an unknown BLAS'}, not the wheels' scipy-openblas")
    assert blas_gemm.NUMPY_BLAS


def test_small_matrix_kernels_follow_numpys_openblas_core(monkeypatch):
    """Small GEMM blocks only where OpenBLAS skips packing them (its AVX-512 cores), never guessed from timing."""
    monkeypatch.delenv(blas_gemm.SMALL_KERNELS_ENV_VAR, raising=False)
    assert blas_gemm._small_matrix_kernels("skylakex", True) and blas_gemm._small_matrix_kernels("cooperlake", True)
    assert not blas_gemm._small_matrix_kernels("haswell", True) and not blas_gemm._small_matrix_kernels("zen", True)
    assert not blas_gemm._small_matrix_kernels("skylakex", False)  # no NumPy CBLAS: the products stay on @
    monkeypatch.setenv(blas_gemm.SMALL_KERNELS_ENV_VAR, "1")
    assert blas_gemm._small_matrix_kernels("haswell", True) and not blas_gemm._small_matrix_kernels("haswell", False)
    monkeypatch.setenv(blas_gemm.SMALL_KERNELS_ENV_VAR, "0")
    assert not blas_gemm._small_matrix_kernels("skylakex", True)
    monkeypatch.setenv(blas_gemm.SMALL_KERNELS_ENV_VAR, "yes")  # not 0 or 1: ignored
    assert blas_gemm._small_matrix_kernels("skylakex", True)
    if blas_gemm.NUMPY_BLAS:  # threadpoolctl names the core NumPy's OpenBLAS picked for this CPU
        assert blas_gemm.BLAS_CORE and blas_gemm.BLAS_CORE == blas_gemm.BLAS_CORE.lower()
