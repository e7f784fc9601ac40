"""Numba versions of ``ember.backends.reference.optim``: each update is one pass over the parameter.

NumPy spends an Adam step on about fifteen array passes and as many temporaries
per parameter; here one loop reads ``w, g, m, v`` once and writes them once.
The loops keep the reference's order of operations and receive every
coefficient already cast to the parameter's dtype (NumPy's rule for a Python
float times a float32 array), so float32 and float64 results equal the
reference's bit for bit (no ``fastmath``: no reassociation, no FMA contraction,
NaN propagates as in NumPy).  ``error_model="numpy"`` drops Python's
zero-division check, which otherwise keeps LLVM from vectorising ``sqrt`` and
``/`` (with it the Adam loop ran 3x slower than NumPy's fifteen passes).

Arrays that are not C-contiguous NumPy float32/float64 arrays of one shape and
dtype go to the reference unchanged.  A parameter of ``pool_flat.MIN_POOL_ELEMENTS``
elements or more (Adam: half as many) is updated in equal parts on Numba's pool
(``pool_flat``): an update is memory-bound, and the pool's workers are still
spinning from the step's last product (the MLP's step 2.5% and SimpleConvNet's
1.5% faster; Adam on TwoLayerNet's first weight 15 us of a 590 us step).
Each element is computed as the serial loop computes it, so the bits do not
depend on the split.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy

from ember.backends.numba import pool_flat
from ember.backends.numba.pool_flat import part_edge
from ember.backends.reference import optim as _ref

_FAST = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
# An Adam element's time in plain updates' (a square root and two divisions; ``pool_flat.run``'s
# ``cost``): TwoLayerNet's 784x50 weight (39,200 elements, 21 us on one core) goes to the pool.
ADAM_ELEMENT_COST = 2


def _fast(w: Any, *others: Any) -> bool:
    """True when ``w`` and every non-None array of ``others`` are C-contiguous, same shape, float32/64."""
    if type(w) is not numpy.ndarray or w.dtype not in _FAST or not w.flags.c_contiguous:
        return False
    for a in others:
        if a is None:
            continue
        if type(a) is not numpy.ndarray or a.dtype != w.dtype or a.shape != w.shape or not a.flags.c_contiguous:
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def _sgd(w, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_wd, use_buf, nesterov, maximize,
         first):  # pragma: no cover - compiled
    for i in range(w.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if use_wd:
            gi = gi + weight_decay * w[i]
        if use_buf:
            if first:
                b = gi
            else:
                b = buf[i] * momentum
                b = b + one_minus_dampening * gi
            buf[i] = b
            if nesterov:
                gi = gi + momentum * b
            else:
                gi = b
        w[i] = w[i] - lr * gi


@numba.njit(nogil=True, parallel=True, cache=True, error_model="numpy")
def _sgd_parts(w, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_wd, use_buf, nesterov, maximize,
               first, count):  # pragma: no cover - compiled
    """``_sgd`` over ``count`` contiguous parts, one per ``prange`` step (``pool_flat``)."""
    n = w.size
    for p in numba.prange(count):
        lo, hi = part_edge(n, p, count), part_edge(n, p + 1, count)
        _sgd(w[lo:hi], g[lo:hi], buf[lo:hi], lr, momentum, one_minus_dampening, weight_decay, use_wd, use_buf,
             nesterov, maximize, first)


def _run(serial: Any, parallel: Any, args: tuple, cost: int = 1) -> None:
    """``serial(*args)``, or ``parallel(*args, count)`` on the pool when the flat arrays are large."""
    pool_flat.run(args[0].size, serial, args, parallel, args, cost)


def _flat(a: Any) -> Any:
    """A C-contiguous array as 1-D (itself when it already is)."""
    return a if a.ndim == 1 else a.reshape(-1)


def _last_result(fn: Any) -> Any:
    """``fn`` (pure) remembering its last arguments and result: SGD's coefficients repeat from step to step
    until the learning rate changes, and casting them took about 2.5 us a step.  One tuple holds both, so a
    thread never pairs one call's arguments with another's result."""
    last: list = [None]

    def cached(*args: Any) -> Any:
        entry = last[0]
        if entry is not None and entry[0] == args:
            return entry[1]
        result = fn(*args)
        last[0] = (args, result)
        return result

    return cached


def _sgd_scalars(dtype: Any, lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool,
                 maximize: bool, first_step: bool, has_buf: bool) -> tuple:
    """The trailing arguments of ``_sgd``, coefficients cast to the parameter's dtype."""
    s = dtype.type
    return (s(lr), s(momentum), s(1 - dampening), s(weight_decay), weight_decay != 0, has_buf, bool(nesterov),
            bool(maximize), bool(first_step))


_sgd_scalars_of = _last_result(_sgd_scalars)


def sgd_update(
    w: Any, g: Any, buf: Any, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """Compiled ``reference.optim.sgd_update`` (same arguments, same results)."""
    _sgd_update_many([w], [g], [buf], lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                     nesterov=nesterov, maximize=maximize, first_step=first_step, xp=xp)


def _sgd_update_many(
    ws: list, gs: list, bufs: list, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """``sgd_update`` on each ``(w, g, buf)`` (``reference.optim.sgd_update_many``), the coefficients cast once.

    One kernel call per parameter still: a call taking tuples of arrays would compile once per parameter count.
    """
    scalars: dict = {}
    for w, g, buf in zip(ws, gs, bufs, strict=True):
        if not _fast(w, g, buf):
            _ref.sgd_update(w, g, buf, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                            nesterov=nesterov, maximize=maximize, first_step=first_step, xp=xp)
            continue
        key = (w.dtype, buf is not None)
        if key not in scalars:
            scalars[key] = _sgd_scalars_of(w.dtype, lr, momentum, dampening, weight_decay, nesterov, maximize,
                                           first_step, buf is not None)
        flat = _flat(w)
        _run(_sgd, _sgd_parts, (flat, _flat(g), flat if buf is None else _flat(buf)) + scalars[key])


@numba.njit(cache=True, error_model="numpy")
def _adam(w, g, m, v, vmax, decay, weight_decay, lerp_weight, lerp_from_a, one_minus_lerp_weight, beta2,
          one_minus_beta2, step_size, bias_correction2_sqrt, eps, decoupled, use_wd, amsgrad,
          maximize):  # pragma: no cover - compiled
    for i in range(w.size):
        gi = g[i]
        if maximize:
            gi = -gi
        wi = w[i]
        if use_wd:
            if decoupled:
                wi = wi * decay
            else:
                gi = gi + weight_decay * wi
        mi = m[i]
        d = gi - mi
        if lerp_from_a:
            mi = mi + d * lerp_weight
        else:
            mi = gi - d * one_minus_lerp_weight
        m[i] = mi
        vi = v[i] * beta2
        vi = vi + one_minus_beta2 * (gi * gi)
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or math.isnan(vi):  # NumPy's maximum: a NaN wins
                vm = vi
            vmax[i] = vm
            vi = vm
        den = math.sqrt(vi)
        den = den / bias_correction2_sqrt
        den = den + eps
        w[i] = wi - step_size * (mi / den)


@numba.njit(nogil=True, parallel=True, cache=True, error_model="numpy")
def _adam_parts(w, g, m, v, vmax, decay, weight_decay, lerp_weight, lerp_from_a, one_minus_lerp_weight, beta2,
                one_minus_beta2, step_size, bias_correction2_sqrt, eps, decoupled, use_wd, amsgrad, maximize,
                count):  # pragma: no cover - compiled
    """``_adam`` over ``count`` contiguous parts, one per ``prange`` step (``pool_flat``)."""
    n = w.size
    for p in numba.prange(count):
        lo, hi = part_edge(n, p, count), part_edge(n, p + 1, count)
        _adam(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi], decay, weight_decay, lerp_weight, lerp_from_a,
              one_minus_lerp_weight, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, decoupled,
              use_wd, amsgrad, maximize)


def _adam_constants(dtype: Any, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                    decoupled_weight_decay: bool, maximize: bool, amsgrad: bool) -> tuple:
    """``_adam``'s coefficients that do not depend on the step count, cast to the parameter's dtype."""
    s = dtype.type
    lerp_weight = 1 - beta1
    return (s(1 - lr * weight_decay), s(weight_decay), s(lerp_weight), lerp_weight < 0.5, s(1 - lerp_weight),
            s(beta2), s(1 - beta2), s(eps), bool(decoupled_weight_decay), weight_decay != 0, amsgrad,
            bool(maximize))


_adam_constants_of = _last_result(_adam_constants)


def _adam_scalars(dtype: Any, step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  decoupled_weight_decay: bool, maximize: bool, amsgrad: bool) -> tuple:
    """The trailing arguments of ``_adam``, coefficients cast to the parameter's dtype (the step-independent
    ones remembered from the last call: casting them took about 3 us a step)."""
    c = _adam_constants_of(dtype, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize, amsgrad)
    s = dtype.type
    return c[:7] + (s(lr / (1 - beta1**step)), s((1 - beta2**step) ** 0.5)) + c[7:]


def _adam_arrays(w: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any) -> tuple:
    """The flat arrays ``_adam`` takes (``v`` again in place of a missing AMSGrad maximum)."""
    flat_v = _flat(exp_avg_sq)
    return (_flat(w), _flat(g), _flat(exp_avg), flat_v, flat_v if max_exp_avg_sq is None else _flat(max_exp_avg_sq))


def adam_update(
    w: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, *, step: int, lr: float, beta1: float,
    beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool, xp: Any = numpy,
) -> None:
    """Compiled ``reference.optim.adam_update`` (same arguments, same results)."""
    _adam_update_many([w], [g], [exp_avg], [exp_avg_sq], [max_exp_avg_sq], step=step, lr=lr, beta1=beta1,
                      beta2=beta2, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                      maximize=maximize, xp=xp)


def _adam_update_many(
    ws: list, gs: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list, *, step: int, lr: float,
    beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool,
    xp: Any = numpy,
) -> None:
    """``adam_update`` on each tensor at step ``step`` (``reference.optim.adam_update_many``), coefficients cast once.

    Parameters at different step counts come in separate calls (``optim.Adam._update_many``).
    """
    scalars: dict = {}
    for w, g, m, v, vmax in zip(ws, gs, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, strict=True):
        if not _fast(w, g, m, v, vmax):
            _ref.adam_update(w, g, m, v, vmax, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                             weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                             maximize=maximize, xp=xp)
            continue
        key = (w.dtype, vmax is not None)
        coefficients = scalars.get(key)
        if coefficients is None:
            scalars[key] = coefficients = _adam_scalars(w.dtype, step, lr, beta1, beta2, eps, weight_decay,
                                                        decoupled_weight_decay, maximize, vmax is not None)
        _run(_adam, _adam_parts, _adam_arrays(w, g, m, v, vmax) + coefficients, ADAM_ELEMENT_COST)


# The batch updates the optimizers look up (``optim.SGD._update_many``); the single updates call the same code.
sgd_update_many = _sgd_update_many
adam_update_many = _adam_update_many
