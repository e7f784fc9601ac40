"""CUDA versions of ``ember.backends.reference.optim``: one launch per parameter tensor.

CuPy spends an Adam step on about fifteen kernels and as many temporaries per
parameter; here one thread per element reads ``w, g, m, v`` once and writes
them once.  Coefficients (``1 - dampening``, bias corrections, ...) are worked
out in Python doubles exactly as the reference does and cast to the
parameter's compute type in the kernel (NumPy's rule for a Python float times
a float32 array).  The GPU compiler may contract ``a * b + c`` into an FMA, so
results agree with the reference to rounding, not bit for bit.

Trade-off: one launch per parameter, not one for all parameters.  A single
multi-tensor launch needs the parameters in one flat buffer (or a pointer
table), which the optimizer classes do not keep; SimpleConvNet has 6
parameters, so this is 6 launches per step instead of about 90.

Arrays that are not one shape and dtype go to the reference, which runs on
CuPy through ``xp``.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.reference import optim as _ref
from ember.backends.cupy.kernel_spec import CTYPES, KernelSpec, launch

_LOOP = """
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {"""

_SGD_BODY = (
    """
extern "C" __global__ void ${name}(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ buf,
    double lr, double momentum, double one_minus_dampening, double weight_decay,
    long long has_buf, long long first_step, long long nesterov, long long maximize, long long total) {"""
    + _LOOP
    + """
    ACC gi = to_acc(g[i]), wi = to_acc(w[i]);
    if (maximize) gi = -gi;
    if (weight_decay != 0.0) gi = gi + (ACC)weight_decay * wi;
    if (has_buf) {
      ACC b = first_step ? gi : to_acc(buf[i]) * (ACC)momentum + (ACC)one_minus_dampening * gi;
      buf[i] = from_acc(b);
      gi = nesterov ? gi + (ACC)momentum * b : b;
    }
    w[i] = from_acc(wi - (ACC)lr * gi);
  }
}
"""
)

_ADAM_BODY = (
    """
extern "C" __global__ void ${name}(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ m1,
    T* __restrict__ m2, T* __restrict__ vmax, double beta1_weight, double beta2, double one_minus_beta2,
    double weight_decay, double decay_factor, double step_size, double bc2_sqrt, double eps,
    long long decoupled, long long amsgrad, long long maximize, long long total) {"""
    + _LOOP
    + """
    ACC gi = to_acc(g[i]), wi = to_acc(w[i]);
    if (maximize) gi = -gi;
    if (weight_decay != 0.0) {
      if (decoupled) wi = wi * (ACC)decay_factor;
      else gi = gi + (ACC)weight_decay * wi;
    }
    ACC m = to_acc(m1[i]);
    ACC d = gi - m;
    m = beta1_weight < 0.5 ? m + d * (ACC)beta1_weight : gi - d * (ACC)(1.0 - beta1_weight);
    ACC v = to_acc(m2[i]) * (ACC)beta2 + (ACC)one_minus_beta2 * (gi * gi);
    m1[i] = from_acc(m);
    m2[i] = from_acc(v);
    if (amsgrad) {
      ACC old = to_acc(vmax[i]);
      v = (old > v || is_nan(old)) ? old : v;  // maximum, NaN-propagating
      vmax[i] = from_acc(v);
    }
    ACC denom = acc_sqrt(v) / (ACC)bc2_sqrt + (ACC)eps;
    w[i] = from_acc(wi - (ACC)step_size * (m / denom));
  }
}
"""
)


def _acc(a: Any) -> Any:
    return a.dtype.type if a.dtype == numpy.float64 else numpy.float32


def _emulate_sgd(total, w, g, buf, lr, momentum, one_minus_dampening, weight_decay, has_buf, first_step,
                 nesterov, maximize):
    """NumPy evaluation of the SGD kernel (same operations, in the compute type)."""
    c = _acc(w)
    gi, wi = g.reshape(-1).astype(c), w.reshape(-1).astype(c)
    if maximize:
        gi = -gi
    if weight_decay != 0.0:
        gi = gi + c(weight_decay) * wi
    if has_buf:
        b = gi if first_step else buf.reshape(-1).astype(c) * c(momentum) + c(one_minus_dampening) * gi
        buf.reshape(-1)[:] = b
        gi = gi + c(momentum) * b if nesterov else b
    w.reshape(-1)[:] = wi - c(lr) * gi


def _emulate_adam(total, w, g, m1, m2, vmax, beta1_weight, beta2, one_minus_beta2, weight_decay, decay_factor,
                  step_size, bc2_sqrt, eps, decoupled, amsgrad, maximize):
    """NumPy evaluation of the Adam kernel (same operations, in the compute type)."""
    c = _acc(w)
    gi, wi = g.reshape(-1).astype(c), w.reshape(-1).astype(c)
    if maximize:
        gi = -gi
    if weight_decay != 0.0:
        if decoupled:
            wi = wi * c(decay_factor)
        else:
            gi = gi + c(weight_decay) * wi
    m = m1.reshape(-1).astype(c)
    d = gi - m
    m = m + d * c(beta1_weight) if beta1_weight < 0.5 else gi - d * c(1.0 - beta1_weight)
    v = m2.reshape(-1).astype(c) * c(beta2) + c(one_minus_beta2) * (gi * gi)
    m1.reshape(-1)[:], m2.reshape(-1)[:] = m, v
    if amsgrad:
        v = numpy.maximum(vmax.reshape(-1).astype(c), v)
        vmax.reshape(-1)[:] = v
    denom = numpy.sqrt(v) / c(bc2_sqrt) + c(eps)
    w.reshape(-1)[:] = wi - c(step_size) * (m / denom)


SGD = KernelSpec("ember_sgd_update", _SGD_BODY, _emulate_sgd)
ADAM = KernelSpec("ember_adam_update", _ADAM_BODY, _emulate_adam)
SPECS = [SGD, ADAM]


def _fusable(w: Any, *others: Any) -> bool:
    """One shape and float dtype, every array C-contiguous (the kernels index them flat)."""
    if w.dtype not in CTYPES or not w.flags.c_contiguous:
        return False
    return all(
        a is None or (a.dtype == w.dtype and a.shape == w.shape and a.flags.c_contiguous) for a in others
    )


def sgd_update(
    w: Any, g: Any, buf: Any, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """One SGD step in place, in one launch (see ``reference.optim.sgd_update``)."""
    if not _fusable(w, g, buf):
        return _ref.sgd_update(w, g, buf, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                               nesterov=nesterov, maximize=maximize, first_step=first_step, xp=xp)
    args = (w, g, w if buf is None else buf, float(lr), float(momentum), float(1 - dampening),
            float(weight_decay), int(buf is not None), int(bool(first_step)), int(bool(nesterov)),
            int(bool(maximize)))
    launch(SGD, w.dtype, w.size, args)
    return None


def adam_update(
    w: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, *, step: int, lr: float, beta1: float,
    beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool, xp: Any = numpy,
) -> None:
    """One Adam / AdamW step in place, in one launch (see ``reference.optim.adam_update``)."""
    if not _fusable(w, g, exp_avg, exp_avg_sq, max_exp_avg_sq):
        return _ref.adam_update(w, g, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr, beta1=beta1,
                                beta2=beta2, eps=eps, weight_decay=weight_decay,
                                decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, xp=xp)
    vmax = exp_avg_sq if max_exp_avg_sq is None else max_exp_avg_sq
    args = (w, g, exp_avg, exp_avg_sq, vmax, float(1 - beta1), float(beta2), float(1 - beta2),
            float(weight_decay), float(1 - lr * weight_decay), float(lr / (1 - beta1**step)),
            float((1 - beta2**step) ** 0.5), float(eps), int(bool(decoupled_weight_decay)),
            int(max_exp_avg_sq is not None), int(bool(maximize)))
    launch(ADAM, w.dtype, w.size, args)
    return None


def __getattr__(name: str) -> Any:
    """Any reference update without a CUDA version here runs on CuPy through ``xp``."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_ref, name)
