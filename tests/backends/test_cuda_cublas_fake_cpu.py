"""Ember's own cuBLAS GEMM (``ember.backends.cupy.cublas``) against a fake libcublas that multiplies in NumPy.

The fake reads each operand from its raw address as a column-major matrix with
the leading dimension it was given (tests/backends/fake_libcublas.py), so a
wrong transpose flag, leading dimension, operand order or dtype code gives a
wrong product here, as it would on a GPU.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
import fake_cuda_graph as fcg
from ember.backends import device_gemm
from ember.backends.cupy import cublas
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture


@pytest.fixture
def lib(fake_cupy, monkeypatch):
    return fcg.install(monkeypatch)


def _dev(a):
    return em.tensor(a, device="cuda").data


LAYOUTS = {
    "contiguous": lambda a: a,
    "transposed view": lambda a: a.T.copy().T,  # column-major: CUBLAS_OP_T, no copy
    "padded rows": lambda a: numpy.pad(a, ((0, 0), (0, 3)))[:, : a.shape[1]],  # ld > columns
    "every other column": lambda a: numpy.repeat(a, 2, axis=1)[:, ::2],  # neither layout: copied first
}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("layout_a", sorted(LAYOUTS))
@pytest.mark.parametrize("layout_b", ["contiguous", "transposed view", "padded rows"])
def test_gemm_matches_numpy_for_every_layout(lib, dtype, layout_a, layout_b):
    import cupy

    rng = numpy.random.default_rng(0)
    a0, b0 = rng.normal(size=(5, 7)).astype(dtype), rng.normal(size=(7, 3)).astype(dtype)
    a, b = (cupy.asarray(LAYOUTS[la](x)) for la, x in ((layout_a, a0), (layout_b, b0)))
    if layout_a != "every other column":
        assert cublas.operand_layout(a) is not None  # passed without a copy
    c = cublas.matmul(a, b, cupy)
    assert c.shape == (5, 3) and c.dtype == numpy.dtype(dtype)
    tol = 1e-2 if dtype == "float16" else 1e-6
    numpy.testing.assert_allclose(c.get().astype(numpy.float64), a0.astype(numpy.float64) @ b0, rtol=tol, atol=tol)
    gemm = [call for call in lib.calls if call[0] == "gemm"][-1]
    _, transa, transb, m, n, k, lda, ldb, ldc, atype, compute, algo = gemm
    assert (m, n, k, ldc) == (3, 5, 7, 3)  # C^T = B^T A^T: m = N, n = M
    assert transa == (1 if layout_b == "transposed view" else 0)
    assert transb == (1 if layout_a == "transposed view" else 0)
    assert ldb == {"contiguous": 7, "transposed view": 5, "padded rows": 10, "every other column": 7}[layout_a]
    assert lda == {"contiguous": 3, "transposed view": 7, "padded rows": 6}[layout_b]
    assert atype == {"float16": 2, "float32": 0, "float64": 1}[dtype]
    assert compute == (70 if dtype == "float64" else 68) and algo == -1


def test_tf32_follows_cupys_switch(lib, monkeypatch):
    import cupy

    a = cupy.asarray(numpy.ones((2, 2), numpy.float32))
    monkeypatch.setenv("CUPY_TF32", "1")
    cublas.matmul(a, a, cupy)
    assert [c for c in lib.calls if c[0] == "gemm"][-1][10] == 77  # CUBLAS_COMPUTE_32F_FAST_TF32
    monkeypatch.setenv("CUPY_TF32", "0")
    cublas.matmul(a, a, cupy)
    assert [c for c in lib.calls if c[0] == "gemm"][-1][10] == 68


def test_workspace_is_set_after_every_set_stream(lib):
    import cupy

    a = cupy.asarray(numpy.ones((2, 2), numpy.float32))
    cublas.matmul(a, a, cupy)
    cublas.matmul(a, a, cupy)  # same stream: not bound again
    with cupy.cuda.Stream(non_blocking=True):
        cublas.matmul(a, a, cupy)
    cublas.matmul(a, a, cupy)
    kinds = [c[0] for c in lib.calls if c[0] != "gemm"]
    assert kinds == ["create"] + ["set_stream", "set_workspace"] * 3
    streams = [c[1] for c in lib.calls if c[0] == "set_stream"]
    assert streams[0] == 0 and streams[1] != 0 and streams[2] == 0
    workspace = cublas._HANDLES[0].workspace
    assert all(c[1] == workspace.ctypes.data and c[2] == cublas.WORKSPACE_BYTES
               for c in lib.calls if c[0] == "set_workspace")


def test_bad_operands_raise_with_the_shapes(lib):
    import cupy

    a = cupy.asarray(numpy.ones((2, 3), numpy.float32))
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(2, 3\)"):
        cublas.gemm_arguments(a, a, cupy.empty((2, 3), numpy.float32), cublas.device_pointer)
    with pytest.raises(ValueError, match="one float dtype"):
        cublas.gemm_arguments(a, a.T.astype(numpy.float64), cupy.empty((2, 2), numpy.float32), cublas.device_pointer)


def test_own_gemm_only_while_capturing_unless_always(lib, monkeypatch):
    x = em.tensor(numpy.ones((3, 4), numpy.float32), device="cuda")
    w = em.nn.Linear(4, 2).to("cuda")
    w(x)
    assert not [c for c in lib.calls if c[0] == "gemm"]  # eager: CuPy's matmul
    monkeypatch.setattr(device_gemm, "ALWAYS", True)
    y = w(x)
    assert len([c for c in lib.calls if c[0] == "gemm"]) == 1
    numpy.testing.assert_allclose(y.numpy(), x.numpy() @ w.weight.numpy().T + w.bias.numpy(), rtol=1e-6)


def test_mixed_float_operands_are_promoted_and_integers_left_to_cupy(lib, monkeypatch):
    import cupy

    monkeypatch.setattr(device_gemm, "ALWAYS", True)
    a = cupy.asarray(numpy.arange(6, dtype=numpy.float16).reshape(2, 3))
    b = cupy.asarray(numpy.ones((3, 2), numpy.float32))
    c = device_gemm.matmul(a, b)
    assert c.dtype == numpy.float32 and c.tolist() == [[3.0, 3.0], [12.0, 12.0]]
    assert [call for call in lib.calls if call[0] == "gemm"][-1][9] == 0  # CUDA_R_32F
    n = len(lib.calls)
    ints = device_gemm.matmul(cupy.asarray(numpy.ones((2, 2), numpy.int64)), cupy.asarray(numpy.ones((2, 2), numpy.int64)))
    assert ints.tolist() == [[2, 2], [2, 2]] and len(lib.calls) == n
