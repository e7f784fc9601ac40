"""``Tensor``: one backend array, its dtype and device, and the op that made it.

Differentiable ops (``+``, ``exp``, ``sum`` ...) are attached to this class by
``ember.autograd.registry`` from the op modules, so this file only holds what
is not an op: construction, conversion, ``backward``, in-place updates and the
version counter that detects in-place edits of values saved for backward.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.capture import replayable
from ember.backends.deferred_checks import raise_pending
from ember import dtypes
from ember.autograd.grad_mode import _GRAD_ENABLED
from ember.autograd.to_shorthands import ToShorthands
from ember.autograd.version_counter import VersionCounted
from ember.backends.device import backend_of, get_backend
from ember.errors import DTypeError, GraphError


class Size(tuple):
    """A shape tuple that can also be called like PyTorch's ``t.size()`` / ``t.size(dim)``."""

    def __call__(self, dim: int | None = None) -> Any:
        return self if dim is None else self[dim]


class Tensor(ToShorthands, VersionCounted):
    """An n-dimensional array that records the ops applied to it for backward.

    Attributes:
        data: the backend array (NumPy on the cpu, CuPy on cuda).
        grad: the accumulated gradient (a Tensor) after ``backward``, else None.
        grad_fn: the ``Function`` node that created this tensor (None for leaves).
    """

    # _hooks stays unset (read with getattr) until a leaf gets a hook: see ember.autograd.hooks.
    # _vbox: the version counter's box, None until first needed (ember.autograd.version_counter).
    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "_out_idx", "_vbox", "_hooks", "__weakref__")
    __array_priority__ = 1000  # NumPy defers `ndarray + Tensor` to Tensor.__radd__
    __array_ufunc__ = None

    def __init__(self, data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False):
        from ember.autograd.creation import as_array

        self.data = as_array(data, dtype, device)
        self.grad = None
        self.grad_fn = None
        self._out_idx = 0
        self._vbox = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data: Any, requires_grad: bool = False, grad_fn: Any = None, out_idx: int = 0) -> "Tensor":
        """Wrap an existing backend array without copying or checking (internal fast path)."""
        t = cls.__new__(cls)
        t.data = data
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._out_idx = out_idx
        t._vbox = None
        return t

    # --------------------------------------------------------------- metadata
    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    @property
    def size(self) -> Size:
        """The shape; callable as ``t.size()`` or ``t.size(dim)`` for PyTorch code."""
        return Size(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    @property
    def dtype(self) -> numpy.dtype:
        return self.data.dtype

    @property
    def device(self) -> Any:
        return backend_of(self.data).device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __hash__(self) -> int:
        return id(self)

    def __getstate__(self) -> tuple:
        """Copies (``copy.deepcopy`` of a model) keep everything but hooks, as PyTorch's do."""
        kept = [k for k in Tensor.__slots__ if k not in ("_hooks", "__weakref__") and hasattr(self, k)]
        return None, {k: getattr(self, k) for k in kept}

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"bool(Tensor): the truth value of a tensor of shape {tuple(self.shape)} is ambiguous; "
                "use .any() or .all()"
            )
        raise_pending()  # a host read: GPU-side input checks report here
        return bool(self.data)

    def __repr__(self) -> str:
        host = numpy.asarray(backend_of(self.data).to_host(self.data))
        body = numpy.array2string(host, separator=", ", prefix="tensor(", precision=4)
        extras = [f"dtype={self.dtype}"]
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    # -------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Mark a leaf as needing ``.grad``; only floating tensors can."""
        if requires_grad and self.data.dtype.kind != "f":
            raise DTypeError(
                f"requires_grad_: only floating point tensors can require gradients, got dtype {self.dtype}"
            )
        if not requires_grad and self.grad_fn is not None:
            raise GraphError("requires_grad_: cannot turn off requires_grad on a non-leaf; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            grad: the gradient flowing into ``self``; may be omitted only for a
                one-element tensor (it defaults to 1).
            retain_graph: keep the graph's saved values for another backward
                (defaults to ``create_graph``).
            create_graph: record the backward itself, for higher-order gradients.
        """
        from ember.autograd.engine import run_backward

        if not self.requires_grad:
            raise GraphError(
                f"backward: tensor of shape {tuple(self.shape)} does not require grad and has no grad_fn; "
                "set requires_grad=True on the leaves you want gradients for"
            )
        seed = _seed_gradient(self, grad, "backward", create_graph)
        run_backward([(self, seed)], retain_graph if retain_graph is not None else create_graph, create_graph)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares storage and the version counter)."""
        t = Tensor._make(self.data)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf's gradient in ``.grad`` after backward (a no-op on leaves)."""
        from ember.autograd import hooks

        hooks.retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf on which ``retain_grad()`` was called."""
        from ember.autograd import hooks

        return hooks.retains_grad(self)

    def register_hook(self, hook: Any) -> Any:
        """``hook(grad)`` runs on this tensor's gradient (summed over all paths) during backward.

        It may return a replacement gradient of the same shape and dtype.  Returns a
        handle whose ``remove()`` unregisters the hook.
        """
        from ember.autograd import hooks

        return hooks.register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """``hook(tensor)`` runs once per backward on a leaf, after its ``.grad`` holds the full sum."""
        from ember.autograd import hooks

        return hooks.register_post_accumulate_grad_hook(self, hook)

    # ------------------------------------------------------------ conversion
    def numpy(self) -> numpy.ndarray:
        """The data as a NumPy array (shares memory on the cpu, a copy from cuda)."""
        raise_pending()  # a host read: GPU-side input checks report here
        return backend_of(self.data).to_host(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        a = numpy.asarray(self.numpy())
        return a if dtype is None else a.astype(dtype)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: expected a tensor with one element, got shape {tuple(self.shape)}")
        raise_pending()
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable, no-op if unchanged."""
        from ember.autograd.ops.convert import cast, to_device

        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to: unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.partition(":")[0] not in ("cpu", "cuda"):
                dtype = a  # a dtype name such as "float64"
            elif isinstance(a, str) or type(a).__name__ == "Device":
                device = a
            else:
                dtype = a
        out = self
        if device is not None:
            out = to_device(out, device)
        if dtype is not None:
            out = cast(out, dtype)
        return out

    def long(self) -> "Tensor":
        return self.to(dtypes.int64)

    def int(self) -> "Tensor":
        """As int32 (PyTorch's ``int``); like every integer result, without a gradient."""
        return self.to(dtypes.int32)

    def short(self) -> "Tensor":
        return self.to(dtypes.int16)

    def byte(self) -> "Tensor":
        return self.to(dtypes.uint8)

    def bool(self) -> "Tensor":
        """Non-zero elements as True."""
        return self.to(dtypes.bool_)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def contiguous(self) -> "Tensor":
        """``self`` if its data is C-contiguous, else a contiguous copy (differentiable, like ``clone``)."""
        return self if self.data.flags.c_contiguous else self.clone()

    def type(self, dtype: Any) -> "Tensor":
        return self.to(dtype)

    def clone(self) -> "Tensor":
        """A copy with its own storage (differentiable)."""
        from ember.autograd.ops.convert import clone

        return clone(self)

    # --------------------------------------------------- in-place (no graph)
    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and _GRAD_ENABLED.get():
            raise GraphError(
                f"{op}: in-place modification of a tensor that requires grad (shape {tuple(self.shape)}) "
                "would corrupt the graph; do it under `with ember.no_grad():` (as optimizers do) "
                "or on a .detach()'ed copy"
            )

    def _inplace(self, op: str, value: Any, ufunc: Any) -> "Tensor":
        self._check_inplace(op)
        if isinstance(value, Tensor):
            value = value.data
        self._guarded_write(op, value, lambda: ufunc(self.data, value, out=self.data, casting="same_kind"))
        return self

    def _guarded_write(self, op: str, value: Any, write: Any) -> None:
        """Run an in-place ``write`` into ``self.data``; NumPy's casting/broadcast errors name ``op``."""
        try:
            write()
        except (ValueError, TypeError, OverflowError) as e:
            got = f"shape {tuple(value.shape)} {value.dtype}" if hasattr(value, "shape") else repr(value)
            kind = TypeError if isinstance(e, TypeError) else ValueError
            raise kind(f"{op}: can't write {got} into a tensor of shape {tuple(self.shape)} and dtype "
                       f"{self.dtype} in place ({e})") from None
        self._version[0] += 1

    @replayable
    def add_(self, other: Any, alpha: float = 1) -> "Tensor":
        xp = backend_of(self.data).xp
        if alpha != 1:
            other = (other.data if isinstance(other, Tensor) else other) * alpha
        return self._inplace("add_", other, xp.add)

    @replayable
    def sub_(self, other: Any) -> "Tensor":
        return self._inplace("sub_", other, backend_of(self.data).xp.subtract)

    @replayable
    def mul_(self, other: Any) -> "Tensor":
        return self._inplace("mul_", other, backend_of(self.data).xp.multiply)

    @replayable
    def div_(self, other: Any) -> "Tensor":
        return self._inplace("div_", other, backend_of(self.data).xp.divide)

    @replayable
    def copy_(self, src: Any) -> "Tensor":
        self._check_inplace("copy_")
        value = src.data if isinstance(src, Tensor) else src
        if isinstance(src, Tensor) and src.device != self.device:
            value = get_backend(self.device).asarray(src.numpy())
        self._guarded_write("copy_", value, lambda: self.data.__setitem__(Ellipsis, value))
        return self

    @replayable
    def fill_(self, value: float, _op: str = "fill_") -> "Tensor":
        self._check_inplace(_op)
        self._guarded_write(_op, value, lambda: self.data.fill(value))
        return self

    @replayable
    def zero_(self) -> "Tensor":
        return self.fill_(0, _op="zero_")

    @replayable
    def __setitem__(self, index: Any, value: Any) -> None:
        from ember.autograd.ops.indexing import _integers_first, normalize_index

        self._check_inplace("__setitem__")
        index = normalize_index(index)
        split = _integers_first(index)  # PyTorch's order: integers select a view first
        target, index = (self.data, index) if split is None else (self.data[split[0]], split[1])
        target[index] = value.data if isinstance(value, Tensor) else value
        self._version[0] += 1


def _seed_gradient(t: Tensor, grad: Any, op: str, create_graph: bool) -> Any:
    """The initial gradient for ``t``: ones for a scalar, else the checked ``grad``."""
    if grad is None:
        if t.data.size != 1:
            raise GraphError(
                f"{op}: grad can be implicitly created only for one-element outputs, got shape "
                f"{tuple(t.shape)}; pass grad= (e.g. ember.ones_like(out)) or reduce with .sum()"
            )
        g = backend_of(t.data).xp.ones(t.data.shape, dtype=t.dtype)
        return Tensor._make(g) if create_graph else g
    if not isinstance(grad, Tensor):
        grad = Tensor(grad, dtype=t.dtype, device=t.device)
    if tuple(grad.shape) != tuple(t.shape):
        raise GraphError(f"{op}: expected grad of shape {tuple(t.shape)}, got {tuple(grad.shape)}")
    if grad.dtype != t.dtype:
        raise DTypeError(f"{op}: expected grad of dtype {t.dtype}, got {grad.dtype}")
    if grad.device != t.device:
        raise GraphError(f"{op}: expected grad on {t.device}, got {grad.device}")
    return grad if create_graph else grad.data
