"""Multi-tensor SGD and Adam that read their per-step coefficients from device memory (for CUDA graphs).

A CUDA graph bakes every kernel argument in at capture, so a learning rate or
an Adam bias correction passed by value would be frozen at its captured value.
These variants of ``ember.backends.cupy.optim``'s multi-tensor kernels read
them from a small float64 device array ``sc`` instead. The host writes the
learning rate into it before every replay (``ember.cuda.graphs.before_replay``);
Adam's step count lives there too and a one-thread prep kernel in the graph
advances it and works out ``lr / (1 - beta1**t)``, ``sqrt(1 - beta2**t)`` and
``1 - lr * weight_decay`` in float64, as the eager step does in Python. A skip
flag in ``sc``, written in the graph by the loss scaler, makes a step with an
inf/nan gradient a no-op that does not advance ``t``. The per-element
statements are the eager kernels'. The pointer table is made during the capture and
filled right after it (H2D copies cannot be captured).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.cupy import optim as _eager
from ember.backends.cupy.kernel_spec import KernelSpec, launch


def _body(scalars: str, pointers: list[str], element: str, coefficients: dict[str, int], skip: int) -> str:
    """The eager multi-tensor kernel with ``coefficients`` read from ``sc`` (name -> index), skipped if ``sc[skip]``."""
    for name in coefficients:
        scalars = scalars.replace(f"double {name}, ", "").replace(f"long long {name}, ", "")
    scalars = "const double* __restrict__ sc, " + scalars
    local = "".join(f"  const double {name} = sc[{k}];\n" for name, k in coefficients.items())
    local += f"  if (sc[{skip}] != 0.0) return;  // the loss scaler found an inf/nan: no update\n"
    text = _eager._many_body(scalars, pointers, element)
    return text.replace("  const long long* starts", local + "  const long long* starts", 1)


# Device scalar layouts. SGD: [lr, skip, first_pending, first_step]: the prep kernel moves a pending
# "momentum buffer is new" flag to first_step at the first step not skipped. Adam: [lr, weight_decay, t, step_size, bc2_sqrt, decay_factor, skip];
# the prep kernel advances t and works out the three coefficients unless the step is skipped.
SGD_LR, SGD_SKIP, SGD_PENDING, SGD_SIZE = 0, 1, 2, 4
ADAM_LR, ADAM_WD, ADAM_T, ADAM_SKIP, ADAM_SIZE = 0, 1, 2, 6, 7
_SGD_COEFFS = {"lr": SGD_LR, "first_step": 3}

_SGD_PREP_BODY = """
extern "C" __global__ void ${name}(double* sc, long long total) {
  if (blockIdx.x == 0 && threadIdx.x == 0 && sc[1] == 0.0) {
    sc[3] = sc[2];
    sc[2] = 0.0;
  }
}
"""
_ADAM_COEFFS = {"step_size": 3, "bc2_sqrt": 4, "decay_factor": 5}

_ADAM_PREP_BODY = """
extern "C" __global__ void ${name}(double* sc, double beta1, double beta2, long long total) {
  if (blockIdx.x == 0 && threadIdx.x == 0 && sc[6] == 0.0) {
    double t = sc[2] + 1.0;
    sc[2] = t;
    sc[3] = sc[0] / (1.0 - pow(beta1, t));
    sc[4] = sqrt(1.0 - pow(beta2, t));
    sc[5] = 1.0 - sc[0] * sc[1];
  }
}
"""


def _host(sc: Any) -> numpy.ndarray:
    return numpy.asarray(sc).reshape(-1)  # the emulation reads device memory directly (no host sync)


def _emulate_adam_prep(total, sc, beta1, beta2):
    """NumPy evaluation of the Adam prep kernel (the eager step's float64 formulas)."""
    v = _host(sc)
    if v[ADAM_SKIP] == 0.0:
        t = int(v[ADAM_T]) + 1
        lr, wd = float(v[ADAM_LR]), float(v[ADAM_WD])
        v[ADAM_T] = t
        v[3:6] = adam_coefficients(lr, t, beta1, beta2, wd)


def _emulate_sgd_prep(total, sc):
    """NumPy evaluation of the SGD prep kernel."""
    v = _host(sc)
    if v[SGD_SKIP] == 0.0:
        v[3], v[2] = v[2], 0.0


def _emulate_sgd_dev(total, table, n_tensors, sc, momentum, one_minus_dampening, weight_decay, has_buf,
                     nesterov, maximize):
    """NumPy evaluation of the device-scalar SGD kernel."""
    v = _host(sc)
    if v[SGD_SKIP] == 0.0:
        _eager._emulate_sgd_many(total, table, n_tensors, float(v[SGD_LR]), momentum, one_minus_dampening,
                                 weight_decay, has_buf, int(v[3] != 0.0), nesterov, maximize)


def _emulate_adam_dev(total, table, n_tensors, sc, beta1_weight, beta2, one_minus_beta2, weight_decay, eps,
                      decoupled, amsgrad, maximize):
    """NumPy evaluation of the device-scalar Adam kernel."""
    v = _host(sc)
    if v[ADAM_SKIP] == 0.0:
        step_size, bc2_sqrt, decay_factor = (float(x) for x in v[3:6])
        _eager._emulate_adam_many(total, table, n_tensors, beta1_weight, beta2, one_minus_beta2, weight_decay,
                                  decay_factor, step_size, bc2_sqrt, eps, decoupled, amsgrad, maximize)


SGD_DEV = KernelSpec("ember_sgd_update_many_dev",
                     _body(_eager._SGD_SCALARS, ["w", "g", "buf"], _eager._SGD_ELEMENT, _SGD_COEFFS, SGD_SKIP),
                     _emulate_sgd_dev, ("--fmad=false",))
ADAM_DEV = KernelSpec("ember_adam_update_many_dev",
                      _body(_eager._ADAM_SCALARS, ["w", "g", "m1", "m2", "vmax"], _eager._ADAM_ELEMENT, _ADAM_COEFFS,
                            ADAM_SKIP),
                      _emulate_adam_dev, ("--fmad=false",))
ADAM_PREP = KernelSpec("ember_adam_prep", _ADAM_PREP_BODY, _emulate_adam_prep, ("--fmad=false",))
SGD_PREP = KernelSpec("ember_sgd_prep", _SGD_PREP_BODY, _emulate_sgd_prep)
SPECS = [SGD_DEV, ADAM_DEV, ADAM_PREP, SGD_PREP]


def _launch(spec: KernelSpec, rows: list, sc: Any, scalars: tuple, xp: Any) -> None:
    if not _eager._many_fusable(rows):
        raise ValueError("ember.cuda graph capture: the optimizer's parameters must share one float dtype and be "
                         "contiguous to read the learning rate from device memory")
    _eager._launch_many(spec, rows, (sc,) + scalars, xp)


def sgd_update_many(ws: list, gs: list, bufs: list, sc: Any, *, momentum: float, dampening: float,
                    weight_decay: float, nesterov: bool, maximize: bool, xp: Any) -> None:
    """SGD on every tensor: the prep kernel settles ``first_step``, then one update reading ``lr`` from ``sc``."""
    has_buf = bufs[0] is not None
    scalars = (float(momentum), float(1 - dampening), float(weight_decay), int(has_buf), int(bool(nesterov)),
               int(bool(maximize)))
    launch(SGD_PREP, numpy.float64, 1, (sc,))
    _launch(SGD_DEV, [list(ws), list(gs), list(bufs) if has_buf else list(ws)], sc, scalars, xp)


def adam_update_many(ws: list, gs: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list, sc: Any, *,
                     beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool,
                     maximize: bool, xp: Any) -> None:
    """Adam on every tensor: the prep kernel advances ``t`` in ``sc`` and sets the coefficients, then one update."""
    amsgrad = max_exp_avg_sqs[0] is not None
    rows = [list(ws), list(gs), list(exp_avgs), list(exp_avg_sqs),
            list(max_exp_avg_sqs) if amsgrad else list(exp_avg_sqs)]
    scalars = (float(1 - beta1), float(beta2), float(1 - beta2), float(weight_decay), float(eps),
               int(bool(decoupled_weight_decay)), int(amsgrad), int(bool(maximize)))
    if not _eager._many_fusable(rows):
        raise ValueError("ember.cuda graph capture: the optimizer's parameters must share one float dtype and be "
                         "contiguous to read the learning rate from device memory")
    launch(ADAM_PREP, numpy.float64, 1, (sc, float(beta1), float(beta2)))
    _launch(ADAM_DEV, rows, sc, scalars, xp)


def adam_coefficients(lr: float, step: int, beta1: float, beta2: float, weight_decay: float) -> numpy.ndarray:
    """``sc`` of the Adam kernel for step ``step`` (the eager kernel's scalars, same float64 arithmetic)."""
    return numpy.array([lr / (1 - beta1**step), (1 - beta2**step) ** 0.5, 1 - lr * weight_decay], dtype=numpy.float64)


_PRELOADED: list = []


def preload(cupy: Any) -> None:
    """Compile and load the float32 update kernels and the prep kernels before a first capture.

    They run only inside graphs, so without this their module would be loaded while
    a stream captures (newer drivers allow it, older ones refuse). Once per process.
    """
    if _PRELOADED or getattr(cupy, "RawKernel", None) is None:
        return
    from ember.backends.cupy.kernel_spec import _compiled

    for spec, dtype in ((SGD_DEV, numpy.float32), (ADAM_DEV, numpy.float32), (SGD_PREP, numpy.float64),
                        (ADAM_PREP, numpy.float64)):
        _compiled(spec, numpy.dtype(dtype)).compile()
    _PRELOADED.append(True)
