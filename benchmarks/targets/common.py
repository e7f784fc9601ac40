"""Inputs shared by every target, so all of them time the same computation.

Synthetic data (seeded standard-normal images, uniform class labels) is enough
for timing: no target's speed depends on the pixel values.  Only NumPy is
imported here; each target converts the arrays to its own tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODELS = ("two_layer_net", "mlp", "simple_convnet", "deep_convnet")
NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "amp": np.float32}


def batch(params: dict, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x, t)``: float32 images ``(batch, *input_dim)`` and int64 labels in ``[0, classes)``."""
    rng = np.random.default_rng(seed)
    shape = (params["batch"], *params.get("input_dim", (1, 28, 28)))
    x = rng.standard_normal(shape, dtype=np.float32)
    t = rng.integers(0, params.get("classes", 10), params["batch"]).astype(np.int64)
    return x, t


def eval_batches(params: dict, seed: int = 0) -> list[np.ndarray]:
    """The images of an inference case, split into the batches one call runs through the model.

    ``params["total"]`` images (default: one batch) in consecutive slices of
    ``params["batch"]``; the last slice is shorter when ``batch`` does not
    divide ``total``.  With ``total == batch`` the single batch equals
    ``batch(params, seed)[0]``, so plain inference cases time the same input.
    """
    size, total = params["batch"], params.get("total", params["batch"])
    images, _ = batch({**params, "batch": total}, seed)
    return [images[i:i + size] for i in range(0, total, size)]


def normal(shape: tuple, seed: int, dtype: str = "float32") -> np.ndarray:
    """A seeded standard-normal array of ``shape`` (the inputs of op cases)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(NUMPY_DTYPES[dtype])


def labels(n: int, classes: int, seed: int) -> np.ndarray:
    """Seeded int64 class indices."""
    return np.random.default_rng(seed).integers(0, classes, n).astype(np.int64)


def check_model(name: str) -> None:
    """Raise ValueError for a model name no target knows."""
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; expected one of {MODELS}")


def cpu_peak_rates(matmul, copy, make, quick: bool) -> dict:
    """Best-of-5 GEMM FLOP/s and copy bandwidth using the given array functions (CPU targets).

    ``make(shape)`` returns a float32 array, ``matmul(a, b)`` multiplies,
    ``copy(dst, src)`` copies; all run synchronously.
    """
    import time

    n = 1024 if quick else 2048
    a, b = make((n, n)), make((n, n))
    matmul(a, b)
    gemm = min(_timed(lambda: matmul(a, b), time) for _ in range(5))
    m = (16 if quick else 64) << 20
    src, dst = make((m,)), make((m,))
    copy(dst, src)
    cp = min(_timed(lambda: copy(dst, src), time) for _ in range(5))
    return {"gemm_flops_per_s": 2.0 * n**3 / gemm, "gemm_shape": [n, n, n], "gemm_dtype": "float32",
            "copy_bytes_per_s": 2.0 * 4 * m / cp, "copy_bytes": 4 * m}


def _timed(fn, time) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def op_step(p: dict, tensor: Any, F: Any, no_grad: Any, dt: Any, bwd: bool) -> Any:
    """The timed callable of an ``ops`` case, written once for every framework with a torch-like API.

    ``tensor(array, dtype=None, requires_grad=False)`` makes the framework's tensor, ``F`` is its
    functional namespace and ``no_grad`` its grad-mode context manager.
    """
    from benchmarks.targets.base import Skip

    leaf = lambda shape, seed: tensor(normal(shape, seed), dt, requires_grad=bwd)  # noqa: E731
    op = p["op"]
    if op == "matmul":
        a, b = leaf(tuple(p["a"]), 1), leaf(tuple(p["b"]), 2)
        leaves, fn = [a, b], lambda: a @ b
    elif op == "conv2d":
        x, W, bias = leaf(tuple(p["x"]), 1), leaf(tuple(p["w"]), 2), leaf((p["w"][0],), 3)
        leaves = [x, W, bias]
        fn = lambda: F.conv2d(x, W, bias, stride=p["stride"], padding=p["pad"])  # noqa: E731
    elif op == "max_pool2d":
        x = leaf(tuple(p["x"]), 1)
        leaves, fn = [x], lambda: F.max_pool2d(x, p["k"], p["stride"])
    elif op == "softmax_ce":
        x = leaf(tuple(p["x"]), 1)
        t = tensor(labels(p["x"][0], p["x"][1], 2))
        leaves, fn = [x], lambda: F.cross_entropy(x, t)
    else:
        raise Skip(f"unknown op {op!r}")
    gy = None
    if bwd:
        with no_grad():
            y0 = fn()
        gy = None if y0.ndim == 0 else tensor(normal(tuple(y0.shape), 4), dt)

    def step() -> Any:
        y = fn()
        if bwd:
            for leaf_t in leaves:
                leaf_t.grad = None
            y.backward(gy)
        return y

    return step
