"""CUDA versions of ``ember.backends.reference.optim``: one launch per parameter, or one for a list of them.

CuPy spends an Adam step on about fifteen kernels and as many temporaries per
parameter; here one thread per element reads ``w, g, m, v`` once and writes
them once.  Coefficients (``1 - dampening``, bias corrections, ...) are worked
out in Python doubles exactly as the reference does and cast to the
parameter's compute type in the kernel (NumPy's rule for a Python float times
a float32 array).  The GPU compiler may contract ``a * b + c`` into an FMA in
the per-parameter kernels, so they agree with the reference to rounding; the
multi-tensor kernels are compiled without contraction, to the same bits.

``sgd_update_many`` / ``adam_update_many`` update a list of parameters in
one launch: a pointer table (each tensor's address, then start offsets into
the concatenated element range) is uploaded per launch, and each thread finds
its tensor by binary search, so parameters and state stay separate arrays.

Arrays that are not one shape and dtype go to the reference, which runs on
CuPy through ``xp``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy

from ember.backends import capture_state
from ember.backends.reference import optim as _ref
from ember.backends.cupy.kernel_spec import CTYPES, KernelSpec, launch

_LOOP = """
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {"""

# The per-element statements of each update, shared by the per-parameter and the
# multi-tensor kernel (so both compile the same arithmetic): element ``i`` of
# the arrays ``w, g, buf`` / ``w, g, m1, m2, vmax``.
_SGD_ELEMENT = """
    ACC gi = to_acc(g[i]), wi = to_acc(w[i]);
    if (maximize) gi = -gi;
    if (weight_decay != 0.0) gi = gi + (ACC)weight_decay * wi;
    if (has_buf) {
      ACC b = first_step ? gi : to_acc(buf[i]) * (ACC)momentum + (ACC)one_minus_dampening * gi;
      buf[i] = from_acc(b);
      gi = nesterov ? gi + (ACC)momentum * b : b;
    }
    w[i] = from_acc(wi - (ACC)lr * gi);
"""
_SGD_SCALARS = """double lr, double momentum, double one_minus_dampening, double weight_decay,
    long long has_buf, long long first_step, long long nesterov, long long maximize, long long total"""
_SGD_BODY = (
    """
extern "C" __global__ void ${name}(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ buf,
    """ + _SGD_SCALARS + ") {" + _LOOP + _SGD_ELEMENT + "  }\n}\n"
)

_ADAM_ELEMENT = """
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
"""
_ADAM_SCALARS = """double beta1_weight, double beta2, double one_minus_beta2,
    double weight_decay, double decay_factor, double step_size, double bc2_sqrt, double eps,
    long long decoupled, long long amsgrad, long long maximize, long long total"""
_ADAM_BODY = (
    """
extern "C" __global__ void ${name}(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ m1,
    T* __restrict__ m2, T* __restrict__ vmax, """ + _ADAM_SCALARS + ") {" + _LOOP + _ADAM_ELEMENT + "  }\n}\n"
)

# The multi-tensor kernels: one launch for a list of tensors.  ``table`` holds
# ROWS rows of ``n_tensors`` device addresses (w, g, ... of each tensor) and then
# the tensors' start offsets in the concatenated element range; each element
# ``k`` finds its tensor by binary search over the starts (the last start <= k,
# which skips empty tensors) and runs the per-parameter statements on element ``i``.
_MANY_HEAD = """
extern "C" __global__ void ${name}(const long long* __restrict__ table, long long n_tensors,
    @SCALARS@) {
  const long long* starts = table + @ROWS@ * n_tensors;
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    long long lo = 0, hi = n_tensors - 1;
    while (lo < hi) {
      long long mid = (lo + hi + 1) / 2;
      if (starts[mid] <= k) lo = mid; else hi = mid - 1;
    }
    long long i = k - starts[lo];
"""


def _many_body(scalars: str, pointers: list[str], element: str) -> str:
    """A multi-tensor kernel's text: the head, one local ``T*`` per table row, the element statements."""
    head = _MANY_HEAD.replace("@SCALARS@", scalars).replace("@ROWS@", str(len(pointers)))
    rows = "".join(f"    T* __restrict__ {p} = (T*)table[{r} * n_tensors + lo];\n" for r, p in enumerate(pointers))
    return head + rows + element + "  }\n}\n"


_SGD_MANY_BODY = _many_body(_SGD_SCALARS, ["w", "g", "buf"], _SGD_ELEMENT)
_ADAM_MANY_BODY = _many_body(_ADAM_SCALARS, ["w", "g", "m1", "m2", "vmax"], _ADAM_ELEMENT)


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


class _PointerTable(numpy.ndarray):
    """A host pointer table (int64) that keeps the arrays it points to: the emulation reads ``rows``."""

    rows: tuple = ()


def _each_tensor(per_tensor: Any, total: int, table: Any, n_tensors: int, scalars: tuple) -> None:
    """Run ``per_tensor`` (a per-parameter emulation) on each non-empty tensor of a pointer table.

    Raises:
        ValueError: the table's start offsets or total do not match its arrays.
    """
    rows = table.rows
    sizes = [int(a.size) for a in rows[0]]
    starts = [int(v) for v in numpy.asarray(table)[len(rows) * n_tensors:]]
    if sum(sizes) != total or starts != [sum(sizes[:t]) for t in range(n_tensors)]:
        raise ValueError("multi-tensor emulation: the pointer table's start offsets do not match its arrays")
    for t in range(n_tensors):
        if sizes[t]:
            per_tensor(sizes[t], *(row[t] for row in rows), *scalars)


def _emulate_sgd_many(total, table, n_tensors, lr, momentum, one_minus_dampening, weight_decay, has_buf, first_step,
                      nesterov, maximize):
    """NumPy evaluation of the multi-tensor SGD kernel: the SGD kernel's on each tensor."""
    _each_tensor(_emulate_sgd, total, table, n_tensors,
                 (lr, momentum, one_minus_dampening, weight_decay, has_buf, first_step, nesterov, maximize))


def _emulate_adam_many(total, table, n_tensors, beta1_weight, beta2, one_minus_beta2, weight_decay, decay_factor,
                       step_size, bc2_sqrt, eps, decoupled, amsgrad, maximize):
    """NumPy evaluation of the multi-tensor Adam kernel: the Adam kernel's on each tensor."""
    _each_tensor(_emulate_adam, total, table, n_tensors, (beta1_weight, beta2, one_minus_beta2, weight_decay,
                                                          decay_factor, step_size, bc2_sqrt, eps, decoupled, amsgrad,
                                                          maximize))


SGD = KernelSpec("ember_sgd_update", _SGD_BODY, _emulate_sgd)
ADAM = KernelSpec("ember_adam_update", _ADAM_BODY, _emulate_adam)
# No FMA contraction in the multi-tensor kernels: every operation rounds as NumPy's
# does, so a CUDA step equals the reference's bit for bit (float32/float64).
SGD_MANY = KernelSpec("ember_sgd_update_many", _SGD_MANY_BODY, _emulate_sgd_many, ("--fmad=false",))
ADAM_MANY = KernelSpec("ember_adam_update_many", _ADAM_MANY_BODY, _emulate_adam_many, ("--fmad=false",))
SPECS = [SGD, ADAM, SGD_MANY, ADAM_MANY]


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


def _pointer_table(rows: list[list[Any]], xp: Any) -> Any:
    """The multi-tensor kernels' table: int64 addresses of each row's arrays, then the start offsets.

    On the GPU it is one host->device copy per launch; NumPy arrays (the CPU
    emulation and tests) get a ``_PointerTable`` that keeps the arrays alive.
    """
    sizes = [int(a.size) for a in rows[0]]
    starts = [sum(sizes[:t]) for t in range(len(sizes))]
    on_host = isinstance(rows[0][0], numpy.ndarray)
    addresses = [a.ctypes.data if on_host else a.data.ptr for row in rows for a in row]
    host = numpy.array(addresses + starts, dtype=numpy.int64)
    if not on_host:
        if capture_state.CAPTURING[0]:  # inside a CUDA graph: allocate now, fill right after the capture
            table = capture_state.host_filled_empty(xp, host.shape, host.dtype)
            capture_state.defer_upload(table, host)
            return table
        return xp.asarray(host)
    table = host.view(_PointerTable)
    table.rows = tuple(tuple(row) for row in rows)
    return table


def _launch_many(spec: KernelSpec, rows: list[list[Any]], scalars: tuple, xp: Any) -> None:
    """One launch of ``spec`` over every tensor of ``rows`` (on the first array's device)."""
    w0 = rows[0][0]
    total = sum(int(a.size) for a in rows[0])
    if total == 0:
        return
    device = contextlib.nullcontext() if isinstance(w0, numpy.ndarray) else w0.device
    with device:
        launch(spec, w0.dtype, total, (_pointer_table(rows, xp), len(rows[0])) + scalars)


def _many_fusable(rows: list[list[Any]]) -> bool:
    """Every tensor fusable (``_fusable``) and of the first tensor's dtype."""
    dtype = rows[0][0].dtype
    return all(_fusable(*(row[t] for row in rows)) and rows[0][t].dtype == dtype for t in range(len(rows[0])))


def sgd_update_many(
    ws: list, gs: list, bufs: list, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """``sgd_update`` on every ``(w, g, buf)`` in one launch (see ``reference.optim.sgd_update_many``)."""
    kw = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
          "nesterov": nesterov, "maximize": maximize, "first_step": first_step, "xp": xp}
    if not ws:
        return None
    has_buf = bufs[0] is not None
    if any((b is not None) != has_buf for b in bufs) or not _many_fusable([ws, gs, bufs if has_buf else ws]):
        for w, g, buf in zip(ws, gs, bufs, strict=True):
            sgd_update(w, g, buf, **kw)
        return None
    scalars = (float(lr), float(momentum), float(1 - dampening), float(weight_decay), int(has_buf),
               int(bool(first_step)), int(bool(nesterov)), int(bool(maximize)))
    _launch_many(SGD_MANY, [list(ws), list(gs), list(bufs) if has_buf else list(ws)], scalars, xp)
    return None


def adam_update_many(
    ws: list, gs: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list, *, step: int, lr: float,
    beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool,
    xp: Any = numpy,
) -> None:
    """``adam_update`` on every tensor in one launch, all at step ``step`` (see ``reference.optim.adam_update_many``)."""
    kw = {"step": step, "lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay,
          "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize, "xp": xp}
    if not ws:
        return None
    amsgrad = max_exp_avg_sqs[0] is not None
    vmaxes = list(max_exp_avg_sqs) if amsgrad else list(exp_avg_sqs)
    rows = [list(ws), list(gs), list(exp_avgs), list(exp_avg_sqs), vmaxes]
    if any((v is not None) != amsgrad for v in max_exp_avg_sqs) or not _many_fusable(rows):
        for w, g, m, v, vmax in zip(ws, gs, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, strict=True):
            adam_update(w, g, m, v, vmax, **kw)
        return None
    scalars = (float(1 - beta1), float(beta2), float(1 - beta2), float(weight_decay), float(1 - lr * weight_decay),
               float(lr / (1 - beta1**step)), float((1 - beta2**step) ** 0.5), float(eps),
               int(bool(decoupled_weight_decay)), int(amsgrad), int(bool(maximize)))
    _launch_many(ADAM_MANY, rows, scalars, xp)
    return None


def __getattr__(name: str) -> Any:
    """Any reference update without a CUDA version here runs on CuPy through ``xp``."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_ref, name)
