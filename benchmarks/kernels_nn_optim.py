"""Time the fused nn and optimizer kernels, NumPy reference vs Numba, and their effect on a training step.

Run from the repository root: ``python -m benchmarks.kernels_nn_optim`` (add
``--quick`` for fewer runs).  Prints medians of repeated runs after warm-up
(``time.perf_counter``), float32, batch 100, at the shapes of the book's
SimpleConvNet and an MLP.  Set ``OPENBLAS_NUM_THREADS=1`` on 2-core machines
for steadier numbers; numbers on a shared machine are noisy.

Sections: (1) each kernel alone; (2) ``opt.step()`` over SimpleConvNet's
parameters; (3) one training step (forward, loss, backward, Adam) with all
NumPy kernels (``numpy``), with Numba conv/pool but reference nn/optim kernels
(``nb-conv``), and with all Numba kernels (``numba``); PyTorch CPU on the same
nets when it is installed, with one thread and with its default thread count.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import ember as em
from ember.backends import NUMBA_BACKEND, nn_kernels, optim_kernels, use_cpu_kernels

WARMUP, RUNS = 3, 30
_TORCH_DEFAULT_THREADS: int | None = None


def median_ms(fn: Callable[[], Any], runs: int = RUNS) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` runs after ``WARMUP`` runs."""
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def kernel_cases(rng: np.random.Generator) -> dict[str, Callable[[Any], Any]]:
    """``name -> fn(module)`` for every nn kernel at SimpleConvNet/MLP shapes (float32)."""
    f32 = np.float32
    logits, t = rng.normal(size=(100, 10)).astype(f32), rng.integers(0, 10, 100)
    p = nn_kernels.softmax_cross_entropy_forward(logits, t)[1]
    hidden, conv = rng.normal(size=(100, 100)).astype(f32), rng.normal(size=(100, 30, 24, 24)).astype(f32)
    g_hidden, g_conv = rng.normal(size=hidden.shape).astype(f32), rng.normal(size=conv.shape).astype(f32)
    sig_h, sig_c = 1 / (1 + np.exp(-hidden)), 1 / (1 + np.exp(-conv))
    w100, w30 = np.ones(100, f32), np.ones(30, f32)
    st_h = nn_kernels.batch_norm_forward_train(hidden, w100, w100, 1e-5)
    st_c = nn_kernels.batch_norm_forward_train(conv, w30, w30, 1e-5)
    return {
        "sce fwd (100,10)": lambda k: k.softmax_cross_entropy_forward(logits, t),
        "sce bwd (100,10)": lambda k: k.softmax_cross_entropy_backward(p, t, 0.01),
        "relu bwd (100,100)": lambda k: k.relu_backward(hidden, g_hidden),
        "relu bwd conv": lambda k: k.relu_backward(conv, g_conv),
        "sigmoid bwd (100,100)": lambda k: k.sigmoid_backward(sig_h, g_hidden),
        "sigmoid bwd conv": lambda k: k.sigmoid_backward(sig_c, g_conv),
        "tanh bwd (100,100)": lambda k: k.tanh_backward(sig_h, g_hidden),
        "tanh bwd conv": lambda k: k.tanh_backward(sig_c, g_conv),
        "bn fwd (100,100)": lambda k: k.batch_norm_forward_train(hidden, w100, w100, 1e-5),
        "bn fwd conv": lambda k: k.batch_norm_forward_train(conv, w30, w30, 1e-5),
        "bn bwd (100,100)": lambda k: k.batch_norm_backward(hidden, g_hidden, st_h[1], st_h[3], w100, True),
        "bn bwd conv": lambda k: k.batch_norm_backward(conv, g_conv, st_c[1], st_c[3], w30, True),
    }


def optimizer_cases(rng: np.random.Generator) -> dict[str, Callable[[Any], Any]]:
    """``name -> fn(module)``: one update of SimpleConvNet's largest parameter W2 (432k floats)."""
    w = rng.normal(size=(100, 4320)).astype(np.float32)
    g = rng.normal(size=w.shape).astype(np.float32)
    buf, m, v = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    sgd = {"lr": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
           "maximize": False, "first_step": False}
    adam = {"step": 10, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
            "decoupled_weight_decay": False, "maximize": False}
    return {
        "sgd momentum W2": lambda k: k.sgd_update(w, g, buf, **sgd),
        "adam W2": lambda k: k.adam_update(w, g, m, v, None, **adam),
    }


def step_of(model_name: str, opt_name: str) -> Callable[[], Any]:
    """One training step of ``model_name`` (batch 100, float32) with ``opt_name``; built under the current kernels."""
    em.manual_seed(0)
    rng = np.random.default_rng(0)
    if model_name == "SimpleConvNet":
        model = em.models.SimpleConvNet()
        x = em.tensor(rng.normal(size=(100, 1, 28, 28)).astype(np.float32))
    else:
        model = em.nn.Sequential(em.nn.Linear(784, 100), em.nn.ReLU(), em.nn.Linear(100, 100), em.nn.ReLU(),
                                 em.nn.Linear(100, 10))
        x = em.tensor(rng.normal(size=(100, 784)).astype(np.float32))
    t = em.tensor(rng.integers(0, 10, 100))
    opt = em.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "Adam" else em.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = em.nn.functional.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def torch_step_of(model_name: str, opt_name: str, threads: int | None) -> Callable[[], Any] | None:
    """The same step in PyTorch (CPU, eager, ``threads`` intra-op threads or its default), or None without it."""
    try:
        import torch
    except ImportError:
        return None
    global _TORCH_DEFAULT_THREADS
    if _TORCH_DEFAULT_THREADS is None:
        _TORCH_DEFAULT_THREADS = torch.get_num_threads()
    torch.set_num_threads(threads or _TORCH_DEFAULT_THREADS)
    torch.manual_seed(0)
    nn = torch.nn
    if model_name == "SimpleConvNet":
        model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                              nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10))
        x = torch.randn(100, 1, 28, 28)
    else:
        model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
        x = torch.randn(100, 784)
    t = torch.randint(0, 10, (100,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "Adam" else torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    """Print the three tables."""
    runs = 10 if "--quick" in sys.argv else RUNS
    rng = np.random.default_rng(0)
    from ember.backends import numba_nn, numba_optim

    print(f"numpy {np.__version__}, float32, cpu; median ms of {runs} runs after {WARMUP} warm-up runs")
    print(f"\n{'kernel':<24}{'numpy':>9}{'numba':>9}{'speedup':>9}")
    for cases, ref, fast in ((kernel_cases(rng), nn_kernels, numba_nn),
                             (optimizer_cases(rng), optim_kernels, numba_optim)):
        for name, fn in cases.items():
            a = median_ms(lambda fn=fn, ref=ref: fn(ref), runs)
            b = median_ms(lambda fn=fn, fast=fast: fn(fast), runs)
            print(f"{name:<24}{a:9.3f}{b:9.3f}{a / b:8.2f}x")

    print(f"\n{'training step (ms)':<24}{'numpy':>9}{'nb-conv':>9}{'numba':>9}{'torch-1t':>9}{'torch':>9}")
    for model_name in ("MLP", "SimpleConvNet"):
        for opt_name in ("SGD", "Adam"):
            times = []
            for kernels, reference_nn in (("numpy", False), ("numba", True), ("numba", False)):
                saved = dict(NUMBA_BACKEND.__dict__)
                if reference_nn:  # Numba conv/pool, reference nn/optim: isolates this module's kernels
                    NUMBA_BACKEND.__dict__.update(nn_kernels=nn_kernels, optim_kernels=optim_kernels)
                try:
                    with use_cpu_kernels(kernels):
                        times.append(median_ms(step_of(model_name, opt_name), runs))
                finally:
                    NUMBA_BACKEND.__dict__.clear()
                    NUMBA_BACKEND.__dict__.update(saved)
            for threads in (1, None):  # one thread (as ember's BLAS here), then PyTorch's default
                torch_step = torch_step_of(model_name, opt_name, threads)
                times.append(median_ms(torch_step, runs) if torch_step else float("nan"))
            print(f"{model_name + ' ' + opt_name:<24}" + "".join(f"{v:9.2f}" for v in times))


if __name__ == "__main__":
    main()
