"""``autocast``: run matmul/linear/conv in float16 and precision-sensitive ops in float32.

Inside ``with ember.amp.autocast():`` every op falls in one of three classes,
after PyTorch's autocast op lists:

* **float16** (``LOW_PRECISION_OPS``): matmul, linear, conv2d and its adjoints.
  Their floating inputs are cast to the autocast dtype, so float32 master
  parameters meet float16 activations in float16 (tensor cores on the GPU).
* **float32** (``FLOAT32_OPS``): softmax, log-softmax, the losses, batch
  norm, sum/mean, exp/log/pow.  float16 inputs are cast up and the result is
  float32: long sums, ``exp`` and normalisation statistics lose too much in
  float16's 11-bit significand.
* **promote** (every other op): where float16 and float32 inputs meet (a
  float16 activation plus a float32 bias), all run in the widest dtype;
  inputs of one dtype pass through untouched.

Weights are cast once per region: the float16 copy of a float32 leaf that requires grad
(a parameter) is cached and reused by every later op in the region, so a weight used
twice costs one cast and its gradient flows back through one cast node.  An entry is
used only while the parameter still holds the same array at the same version (an
in-place update makes it stale) under the same grad mode; the cache is cleared when
the region exits, so each training step re-casts the weights the optimizer changed.

Mechanism and trade-offs (one table keyed by Function class, consulted in
``Function.apply``; the weight-cast cache): docs/engineering/notes.md, "Autocast".
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy

from ember import dtypes
from ember.autograd.function import AUTOCAST_CASTER, Function
from ember.autograd.grad_mode import is_grad_enabled
from ember.autograd.ops.activation import LogNormalizedExponential, NormalizedExponential
from ember.autograd.ops.conv import Convolution2d, Convolution2dWeightGrad, TransposedConvolution2d
from ember.autograd.ops.conv_relu import RectifiedConvolution2d
from ember.autograd.ops.convert import Cast
from ember.autograd.ops.elementwise import Exp, Log, Pow
from ember.autograd.ops.linalg import MatMul
from ember.autograd.ops.linear_relu import RectifiedAffine
from ember.autograd.ops.loss import MeanSquaredError, NegativeLogLikelihood, SoftmaxCrossEntropy
from ember.autograd.ops.nn_ops import Affine, BatchNormalization
from ember.autograd.ops.reduce import Mean, Sum
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError

LOW_PRECISION_OPS = frozenset(
    [MatMul, Affine, RectifiedAffine, Convolution2d, TransposedConvolution2d, Convolution2dWeightGrad,
     RectifiedConvolution2d]
)
FLOAT32_OPS = frozenset(
    [NormalizedExponential, LogNormalizedExponential, SoftmaxCrossEntropy, NegativeLogLikelihood, MeanSquaredError,
     BatchNormalization, Sum, Mean, Exp, Log, Pow]
)
SUPPORTED_DTYPES = (dtypes.float16,)

_FLOAT32 = numpy.dtype(numpy.float32)
_FLOAT16 = numpy.dtype(numpy.float16)
_WIDTH = {numpy.dtype(numpy.float16): 2, numpy.dtype(numpy.float32): 4, numpy.dtype(numpy.float64): 8}


def _cast(t: Tensor, dtype: numpy.dtype) -> Tensor:
    """``t`` as ``dtype`` through a recorded ``Cast`` node (its gradient is cast back)."""
    return Cast.apply(t, dtype=dtype)


class _Caster:
    """The callable ``Function.apply`` runs on an op's arguments while autocast is on.

    ``cache`` maps ``id(weight)`` to ``(weight, its array, its version, grad mode, cast)``
    for this region (see the module docstring).
    """

    __slots__ = ("dtype", "cache")

    def __init__(self, dtype: numpy.dtype):
        self.dtype = dtype
        self.cache: dict = {}

    def __call__(self, cls: type, args: tuple) -> tuple:
        """``args`` with Tensor arguments cast by ``cls``'s policy (the table above)."""
        if cls is Cast:
            return args
        if cls in LOW_PRECISION_OPS:
            low = self.dtype
            return tuple(
                self._low(a) if isinstance(a, Tensor) and a.dtype.kind == "f" and a.dtype != low else a
                for a in args
            )
        if cls in FLOAT32_OPS:
            return tuple(_cast(a, _FLOAT32) if isinstance(a, Tensor) and a.dtype == _FLOAT16 else a for a in args)
        return _promote(args)

    def _low(self, t: Tensor) -> Tensor:
        """``t`` in the low dtype; a float32 weight (a leaf requiring grad) is cast once per region."""
        if t.grad_fn is not None or not t.requires_grad or t.dtype != _FLOAT32:
            return _cast(t, self.dtype)
        grad_mode = is_grad_enabled()
        hit = self.cache.get(id(t))
        if hit is not None and hit[0] is t and hit[1] is t.data and hit[2] == t._version[0] and hit[3] == grad_mode:
            return hit[4]
        low = _cast(t, self.dtype)
        self.cache[id(t)] = (t, t.data, t._version[0], grad_mode, low)
        return low


def _promote(args: tuple) -> tuple:
    """Cast floating Tensor arguments of mixed dtypes to the widest of them."""
    widest = None
    mixed = False
    for a in args:
        if isinstance(a, Tensor) and a.dtype.kind == "f":
            if widest is None:
                widest = a.dtype
            elif a.dtype != widest:
                mixed = True
                if _WIDTH[a.dtype] > _WIDTH[widest]:
                    widest = a.dtype
    if not mixed:
        return args
    return tuple(
        _cast(a, widest) if isinstance(a, Tensor) and a.dtype.kind == "f" and a.dtype != widest else a for a in args
    )


class autocast:  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) for float16 mixed precision; see the module docstring.

    Args:
        dtype: the low-precision dtype of matmul/linear/conv (float16, the only one NumPy and CuPy share).
        enabled: False makes the region run at full precision, also inside an enclosing autocast.

    Raises:
        DTypeError: ``dtype`` is not float16.
    """

    def __init__(self, dtype: Any = dtypes.float16, enabled: bool = True):
        dt = dtypes.to_dtype(dtype, "autocast")
        if dt not in SUPPORTED_DTYPES:
            raise DTypeError(f"autocast: expected dtype float16, got {dt}; float32/float64 need no autocast")
        self.dtype = dt
        self.enabled = bool(enabled)
        self._tokens: list = []

    def __enter__(self) -> "autocast":
        """Install this region's caster (or None when disabled) for the current context."""
        self._tokens.append(AUTOCAST_CASTER.set(_Caster(self.dtype) if self.enabled else None))
        return self

    def __exit__(self, *exc: Any) -> None:
        """Restore the enclosing region's state, also after an exception; drop the region's weight casts."""
        caster = AUTOCAST_CASTER.get()
        AUTOCAST_CASTER.reset(self._tokens.pop())
        if caster is not None:
            caster.cache.clear()

    def __call__(self, fn: Callable) -> Callable:
        """Use as ``@autocast()``: ``fn`` runs inside a fresh region on every call."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_autocast_enabled() -> bool:
    """True inside an enabled ``autocast`` region."""
    return AUTOCAST_CASTER.get() is not None


def get_autocast_dtype() -> numpy.dtype | None:
    """The low-precision dtype of the current region, or None outside autocast."""
    caster = AUTOCAST_CASTER.get()
    return None if caster is None else caster.dtype


def op_policy(cls: type) -> str:
    """``"float16"``, ``"float32"`` or ``"promote"``: what autocast does to ``cls``'s inputs."""
    if not (isinstance(cls, type) and issubclass(cls, Function)):
        raise TypeError(f"op_policy: expected a Function subclass, got {cls!r}")
    if cls in LOW_PRECISION_OPS:
        return "float16"
    if cls in FLOAT32_OPS:
        return "float32"
    return "promote"
