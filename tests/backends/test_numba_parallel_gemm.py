"""A linear layer's products cut into blocks on Numba's pool (``ember.backends.numba.parallel_gemm``).

The blocks never cut the shared axis, so each block is the very BLAS call one
thread makes for those rows or columns: the result is compared bit for bit
with the blocks computed one by one by NumPy, and within rounding with the
whole product (BLAS may pick another kernel for a narrower block).
"""

import threading

import numpy as np
import pytest

pytest.importorskip("numba")

from ember.backends.numba import blas_gemm, parallel_gemm, pool_region  # noqa: E402

pytestmark = pytest.mark.skipif(not blas_gemm.NUMPY_BLAS, reason="NumPy exports no ILP64 CBLAS: products stay on @")


def _operands(rng, m, k, n, trans_a, trans_b, dtype):
    a = rng.normal(size=(k, m)).astype(dtype).T if trans_a else rng.normal(size=(m, k)).astype(dtype)
    b = rng.normal(size=(n, k)).astype(dtype).T if trans_b else rng.normal(size=(k, n)).astype(dtype)
    return a, b


def _by_rows(m, n, workers):
    """Whether ``matmul`` cuts an ``m x n`` result into row blocks (else column blocks)."""
    small = parallel_gemm.SMALL_KERNELS
    fewest = parallel_gemm.MIN_ROWS_PER_BLOCK if small else parallel_gemm.MIN_ROWS_PER_PACKED_BLOCK
    return m >= n or m >= fewest * workers


def _by_blocks(a, b, parts, workers):
    """The product as NumPy computes each of ``matmul``'s blocks on its own."""
    m, n = a.shape[0], b.shape[1]
    rows = _by_rows(m, n, workers)
    total = m if rows else n
    edges = [total * p // parts for p in range(parts + 1)]
    if rows:
        return np.concatenate([a[lo:hi] @ b for lo, hi in zip(edges, edges[1:])], axis=0)
    return np.concatenate([a @ b[:, lo:hi] for lo, hi in zip(edges, edges[1:])], axis=1)


@pytest.fixture
def no_threshold(monkeypatch):
    monkeypatch.setattr(parallel_gemm, "MIN_PARALLEL_MACS", 0)


@pytest.fixture(params=[True, False], ids=["small-kernels", "packing-kernels"])
def kernels(request, monkeypatch):
    """Both plans on any machine: with OpenBLAS's small-matrix kernels (AVX-512 cores) and without."""
    monkeypatch.setattr(parallel_gemm, "SMALL_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("shape", [(100, 784, 50), (50, 100, 784), (7, 33, 5), (4, 9, 40), (300, 20, 500)])
def test_blocks_are_numpys_blocks_bit_for_bit(no_threshold, kernels, rng, dtype, trans_a, trans_b, shape):
    a, b = _operands(rng, *shape, trans_a, trans_b, dtype)
    m, k, n = shape
    for workers in (2, 3):
        parts, rows = parallel_gemm.plan(a, b, workers)
        assert parts == parallel_gemm.blocks(a, b, workers) and rows == _by_rows(m, n, workers)
        axis = m if rows else n
        assert min(workers, axis) <= parts <= (axis if kernels else workers)
        if parts > workers:  # cut finer for OpenBLAS's small-matrix kernels: no more than needed
            assert kernels and parts % workers == 0 and parts <= workers * parallel_gemm.MAX_BLOCKS_PER_WORKER
            small = parallel_gemm.SMALL_BLOCK_MACS
            assert m * k * n <= parts * small < m * k * n + workers * small
        got = parallel_gemm.matmul(a, b, workers)
        assert got.dtype == dtype and got.shape == (shape[0], shape[2]) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, _by_blocks(a, b, parts, workers))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, a @ b, rtol=tol, atol=tol * shape[1])
        assert parallel_gemm.matmul(a, b, workers).tobytes() == got.tobytes()  # a run repeats bit for bit


@pytest.mark.parametrize("shape", [(2, 5, 1), (1, 6, 3), (3, 4, 2)])
def test_blocks_of_one_row_or_column_are_right_within_rounding(no_threshold, rng, shape):
    """NumPy multiplies a one-row block with gemv, the pool with gemm: equal within rounding only."""
    a, b = _operands(rng, *shape, False, False, np.float32)
    np.testing.assert_allclose(parallel_gemm.matmul(a, b, 2), a @ b, rtol=1e-5, atol=1e-5)


def test_row_strided_views_are_taken_as_they_are(no_threshold, rng):
    big = rng.normal(size=(12, 20)).astype(np.float32)
    a, b = big[:, 2:9], rng.normal(size=(7, 30)).astype(np.float32)  # a's rows are 20 apart
    assert parallel_gemm._operand(a)[0] is a and parallel_gemm._operand(a)[1] is False
    assert parallel_gemm._operand(a.T)[1] is True  # a transposed view: unit stride down its columns
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b, 2), _by_blocks(a, b, parallel_gemm.blocks(a, b, 2), 2))


def test_what_stays_on_numpys_matmul(rng, monkeypatch):
    calls = []
    monkeypatch.setattr(parallel_gemm, "_blocks", lambda *args: calls.append(args))
    a, b = rng.normal(size=(64, 128)).astype(np.float32), rng.normal(size=(128, 32)).astype(np.float32)
    assert 64 * 128 * 32 < parallel_gemm.MIN_PARALLEL_MACS
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b, 2), a @ b)  # too small to split
    monkeypatch.setattr(parallel_gemm, "MIN_PARALLEL_MACS", 0)
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b, 1), a @ b)  # one worker
    np.testing.assert_array_equal(parallel_gemm.matmul(a[:, ::2], b[::2], 2), a[:, ::2] @ b[::2])  # no unit stride
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b.astype(np.float64), 2), a @ b.astype(np.float64))
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(parallel_gemm.matmul(ints, ints.T, 2), ints @ ints.T)  # integers
    assert calls == []
    parallel_gemm.matmul(a, b, 2)
    assert len(calls) == 1 and calls[0][6] == 2  # (a, b, c, trans_a, trans_b, by_rows, parts, ...)


@pytest.mark.parametrize("m, k, n, small_rows, packed_rows, packed_parts", [
    (100, 784, 50, True, True, 2),  # TwoLayerNet's forward: more rows than columns
    (50, 100, 784, False, True, 2),  # its weight gradient: 25 rows a block, too few only for small kernels
    (128, 784, 512, False, True, 2),  # the MLP's forward: 64 rows a block
    (512, 128, 784, True, True, 2),  # the MLP's weight gradient: 256 rows a block, 25% faster than columns
    (10, 128, 512, False, False, 2),  # its last layer's weight gradient: 5 rows a block would be too few
])
def test_which_axis_the_blocks_cut(no_threshold, kernels, rng, monkeypatch, m, k, n, small_rows, packed_rows,
                                   packed_parts):
    rows = small_rows if kernels else packed_rows
    seen = []
    real = parallel_gemm._blocks
    monkeypatch.setattr(parallel_gemm, "_blocks", lambda *args: seen.append(args[5:7]) or real(*args))
    a, b = _operands(rng, m, k, n, True, False, np.float32)
    expected = _by_blocks(a, b, parallel_gemm.blocks(a, b, 2), 2)
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b, 2), expected)
    assert seen[0][0] == rows and _by_rows(m, n, 2) == rows
    if not kernels:  # packing kernels: one block per worker, however small the product
        assert seen == [(rows, packed_parts)]


def test_a_product_with_an_empty_axis(no_threshold):
    a, b = np.ones((4, 0), np.float32), np.ones((0, 3), np.float32)
    np.testing.assert_array_equal(parallel_gemm.matmul(a, b, 2), np.zeros((4, 3), np.float32))


def test_the_region_lock_is_released_after_an_error(no_threshold, monkeypatch, rng):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(parallel_gemm, "_blocks", broken)
    a = rng.normal(size=(8, 8)).astype(np.float32)
    with pytest.raises(RuntimeError, match="boom"):
        parallel_gemm.matmul(a, a, 2)
    assert not pool_region.LOCK.locked()


def test_a_region_sized_below_the_pool_is_put_back(monkeypatch):
    import numba

    before = numba.get_num_threads(), numba.get_parallel_chunksize()
    previous = pool_region.enter(1, dynamic=True)
    try:
        assert numba.get_num_threads() == 1 and numba.get_parallel_chunksize() == 1
        assert pool_region.LOCK.locked()
    finally:
        pool_region.leave(previous)
    assert (numba.get_num_threads(), numba.get_parallel_chunksize()) == before
    assert not pool_region.LOCK.locked()
    assert pool_region.enter(pool_region.POOL_THREADS + 5) is None  # the whole pool, static: nothing to set
    pool_region.leave(None)
    assert not pool_region.LOCK.locked()


def test_products_from_two_python_threads_at_once(no_threshold, rng):
    """Regions from two threads take turns on the lock; each gets its own right answer."""
    pairs = [_operands(rng, 40, 30, 20, False, True, np.float32) for _ in range(2)]
    results: dict = {}

    def run(i):
        a, b = pairs[i]
        results[i] = [parallel_gemm.matmul(a, b, 2) for _ in range(50)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (a, b) in enumerate(pairs):
        for got in results[i]:
            np.testing.assert_array_equal(got, _by_blocks(a, b, parallel_gemm.blocks(a, b, 2), 2))


def test_linear_through_the_pool_equals_the_inline_products(no_threshold, rng, monkeypatch):
    """y, gx and gW of linear with the products on the pool equal the one-thread ones within rounding."""
    import ember as em
    import ember.nn.functional as F
    from ember.backends.cpu.threads import set_thread_policy
    from ember.backends.selection import cpu_kernels

    if cpu_kernels() != "numba":
        pytest.skip("the Numba kernels are not the CPU kernels in this run (EMBER_CPU_KERNELS)")
    x, W, b = rng.normal(size=(9, 6)), rng.normal(size=(4, 6)), rng.normal(size=(4,))

    def run():
        xt, Wt = em.tensor(x, requires_grad=True), em.tensor(W, requires_grad=True)
        y = F.linear(xt, Wt, em.tensor(b))
        y.backward(em.tensor(np.cos(y.numpy())))
        return y.numpy(), xt.grad.numpy(), Wt.grad.numpy()

    calls = []
    real = parallel_gemm._blocks
    monkeypatch.setattr(parallel_gemm, "_blocks", lambda *args: calls.append(args[6]) or real(*args))
    previous = set_thread_policy(batch_workers=1)
    try:
        inline = run()
        assert calls == []
        set_thread_policy(batch_workers=3)
        pooled = run()
        assert calls == [3, 3, 3]  # y, gx and gW, each in three blocks
        assert em.autograd.gradcheck(lambda xx, ww: F.linear(xx, ww),
                                     (em.tensor(x, requires_grad=True), em.tensor(W, requires_grad=True)))
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    for one, many in zip(inline, pooled):
        np.testing.assert_allclose(many, one, rtol=1e-13, atol=1e-13)


def test_regions_run_on_one_thread_while_another_process_holds_a_core(no_threshold, monkeypatch, rng):
    """Under load a region runs the same blocks on the calling thread: the same bits, one thread."""
    import numba

    from ember.backends.cpu import core_load

    a, b = _operands(rng, 60, 50, 40, False, True, np.float32)
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 0.0)
    assert pool_region.region_threads(2) == min(2, pool_region.POOL_THREADS)
    idle = parallel_gemm.matmul(a, b, 2)
    seen = []
    real = parallel_gemm._blocks
    monkeypatch.setattr(parallel_gemm, "_blocks", lambda *args: seen.append(numba.get_num_threads()) or real(*args))
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: 1.0)
    assert pool_region.region_threads(2) == 1
    busy = parallel_gemm.matmul(a, b, 2)
    assert seen == [1] and busy.tobytes() == idle.tobytes()
    monkeypatch.setattr(core_load, "other_cores_busy", lambda: None)  # unknown: the pool is used
    assert pool_region.region_threads(2) == min(2, pool_region.POOL_THREADS)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX)")
def test_a_child_forked_after_the_pool_started_computes_without_it(no_threshold, rng, monkeypatch):
    """GNU OpenMP is not fork-safe: Numba terminates a forked child that starts a region of a started pool.

    The child must take the same blocks and slices without the pool (and get the parent's bits).
    """
    import os

    from ember.backends.cpu import batch_split
    from ember.backends.cpu.threads import set_thread_policy
    from ember.backends.numba import conv_fused, nn, optim, pool, pool_flat

    monkeypatch.setattr(pool_flat, "MIN_POOL_ELEMENTS", 0)
    monkeypatch.setattr(conv_fused, "MIN_SLICE_ELEMENTS", 0)
    monkeypatch.setattr(batch_split, "MIN_SPLIT_ELEMENTS", 0)
    a, b = _operands(rng, 30, 20, 10, False, True, np.float32)
    x = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
    W = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    previous = set_thread_policy(batch_workers=2)
    try:
        def compute():
            y = conv_fused.conv2d_forward(x, W, None, (1, 1), (1, 1), relu=True)
            w = a.copy()
            optim.sgd_update(w, a, None, lr=0.5, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                             maximize=False, first_step=False)
            return parallel_gemm.matmul(a, b, 2), y, pool.max_pool2d_forward(y, 2, 2, 2)[0], nn.relu_forward(a), w

        expected = compute()  # starts the pool in this process
        assert pool_region.available()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = 0 if all(g.tobytes() == e.tobytes() for g, e in zip(compute(), expected)) else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child ended with status {status}"


def test_a_first_call_applies_the_thread_policy_before_its_blocks():
    """Called before anything asked for the thread policy, the blocks must still run with one BLAS thread
    each: the same bits as every later call (OpenBLAS's own threads inside a block give other bits)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import numpy as np\n"
        "from ember.backends.numba import parallel_gemm, nn\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.normal(size=(128, 784)).astype(np.float32)\n"
        "b = rng.normal(size=(512, 784)).astype(np.float32).T\n"
        "first = parallel_gemm.matmul(a, b, 2)\n"
        "nn.relu_forward(rng.normal(size=(1 << 17,)).astype(np.float32))\n"
        "assert np.array_equal(first, parallel_gemm.matmul(a, b, 2))\n"
        "print('same')\n"
    )
    root = Path(__file__).resolve().parents[2]
    user_set = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "EMBER_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in user_set}  # the default policy: one BLAS thread
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=root)
    assert proc.returncode == 0 and proc.stdout.strip() == "same", proc.stderr[-2000:]
