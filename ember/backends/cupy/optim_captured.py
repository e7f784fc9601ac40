"""Multi-tensor SGD and Adam that read their per-step coefficients from device memory (for CUDA graphs).

A CUDA graph bakes every kernel argument in at capture, so a learning rate or
an Adam bias correction passed by value would be frozen at its captured value.
These variants of ``ember.backends.cupy.optim``'s multi-tensor kernels read
them from a small float64 device array ``sc`` instead, which the optimizer
refreshes before every replay (``ember.cuda.graphs.before_replay``):
SGD ``sc = [lr]``; Adam ``sc = [lr / (1 - beta1**t), sqrt(1 - beta2**t), 1 - lr * weight_decay]``.
The per-element statements are the eager kernels', so a replayed step equals
an eager one bit for bit. The pointer table is made during the capture and
filled right after it (H2D copies cannot be captured).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.cupy import optim as _eager
from ember.backends.cupy.kernel_spec import KernelSpec, launch


def _body(scalars: str, pointers: list[str], element: str, coefficients: list[str]) -> str:
    """The eager multi-tensor kernel with ``coefficients`` read from ``sc`` instead of passed by value."""
    for name in coefficients:
        scalars = scalars.replace(f"double {name}, ", "")
    scalars = "const double* __restrict__ sc, " + scalars
    local = "".join(f"  const double {name} = sc[{k}];\n" for k, name in enumerate(coefficients))
    text = _eager._many_body(scalars, pointers, element)
    return text.replace("  const long long* starts", local + "  const long long* starts", 1)


_SGD_COEFFS = ["lr"]
_ADAM_COEFFS = ["step_size", "bc2_sqrt", "decay_factor"]


def _host(sc: Any) -> numpy.ndarray:
    return numpy.asarray(sc).reshape(-1)  # the emulation reads device memory directly (no host sync)


def _emulate_sgd_dev(total, table, n_tensors, sc, momentum, one_minus_dampening, weight_decay, has_buf, first_step,
                     nesterov, maximize):
    """NumPy evaluation of the device-scalar SGD kernel."""
    (lr,) = (float(v) for v in _host(sc)[:1])
    _eager._emulate_sgd_many(total, table, n_tensors, lr, momentum, one_minus_dampening, weight_decay, has_buf,
                             first_step, nesterov, maximize)


def _emulate_adam_dev(total, table, n_tensors, sc, beta1_weight, beta2, one_minus_beta2, weight_decay, eps,
                      decoupled, amsgrad, maximize):
    """NumPy evaluation of the device-scalar Adam kernel."""
    step_size, bc2_sqrt, decay_factor = (float(v) for v in _host(sc)[:3])
    _eager._emulate_adam_many(total, table, n_tensors, beta1_weight, beta2, one_minus_beta2, weight_decay,
                              decay_factor, step_size, bc2_sqrt, eps, decoupled, amsgrad, maximize)


SGD_DEV = KernelSpec("ember_sgd_update_many_dev",
                     _body(_eager._SGD_SCALARS, ["w", "g", "buf"], _eager._SGD_ELEMENT, _SGD_COEFFS),
                     _emulate_sgd_dev, ("--fmad=false",))
ADAM_DEV = KernelSpec("ember_adam_update_many_dev",
                      _body(_eager._ADAM_SCALARS, ["w", "g", "m1", "m2", "vmax"], _eager._ADAM_ELEMENT, _ADAM_COEFFS),
                      _emulate_adam_dev, ("--fmad=false",))
SPECS = [SGD_DEV, ADAM_DEV]


def _launch(spec: KernelSpec, rows: list, sc: Any, scalars: tuple, xp: Any) -> None:
    if not _eager._many_fusable(rows):
        raise ValueError("ember.cuda graph capture: the optimizer's parameters must share one float dtype and be "
                         "contiguous to read the learning rate from device memory")
    _eager._launch_many(spec, rows, (sc,) + scalars, xp)


def sgd_update_many(ws: list, gs: list, bufs: list, sc: Any, *, momentum: float, dampening: float,
                    weight_decay: float, nesterov: bool, maximize: bool, xp: Any) -> None:
    """SGD on every tensor in one launch, ``lr = sc[0]`` read on the device (momentum buffers exist)."""
    has_buf = bufs[0] is not None
    scalars = (float(momentum), float(1 - dampening), float(weight_decay), int(has_buf), 0, int(bool(nesterov)),
               int(bool(maximize)))
    _launch(SGD_DEV, [list(ws), list(gs), list(bufs) if has_buf else list(ws)], sc, scalars, xp)


def adam_update_many(ws: list, gs: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list, sc: Any, *,
                     beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool,
                     maximize: bool, xp: Any) -> None:
    """Adam on every tensor in one launch, the step's coefficients ``sc[0:3]`` read on the device."""
    amsgrad = max_exp_avg_sqs[0] is not None
    rows = [list(ws), list(gs), list(exp_avgs), list(exp_avg_sqs),
            list(max_exp_avg_sqs) if amsgrad else list(exp_avg_sqs)]
    scalars = (float(1 - beta1), float(beta2), float(1 - beta2), float(weight_decay), float(eps),
               int(bool(decoupled_weight_decay)), int(amsgrad), int(bool(maximize)))
    _launch(ADAM_DEV, rows, sc, scalars, xp)


def adam_coefficients(lr: float, step: int, beta1: float, beta2: float, weight_decay: float) -> numpy.ndarray:
    """``sc`` of the Adam kernel for step ``step`` (the eager kernel's scalars, same float64 arithmetic)."""
    return numpy.array([lr / (1 - beta1**step), (1 - beta2**step) ** 0.5, 1 - lr * weight_decay], dtype=numpy.float64)
