"""Adapters that run one instruction set on ember (``EM``) or PyTorch (``TO``), for the parity tests.

Documented differences are absorbed here: torch's ``amax`` for ember's
``max(axis=...)`` (NumPy's spelling returns the values only).  Import after
``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import numpy
import torch

import ember as em

RTOL = 1e-10


def _dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


class EM:
    """The instruction set on ember."""

    leaf = staticmethod(lambda a: em.tensor(a, dtype=em.float64, requires_grad=True))
    const = staticmethod(lambda a: em.tensor(a, dtype=em.float64))
    index = staticmethod(lambda idx: idx)
    to_numpy = staticmethod(lambda t: t.numpy())
    sum = staticmethod(lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims))
    mean = staticmethod(lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims))
    amax = staticmethod(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims))
    amin = staticmethod(lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims))
    var = staticmethod(lambda x, axis, keepdims: x.var(axis=axis, keepdims=keepdims))
    permute = staticmethod(lambda x, perm: x.permute(*perm))
    swap = staticmethod(lambda x, i, j: x.transpose(i, j))
    T = staticmethod(lambda x: x.T)
    reshape = staticmethod(lambda x, shape: x.reshape(*shape))
    cat = staticmethod(lambda xs, axis: em.cat(xs, axis=axis))
    stack = staticmethod(lambda xs, axis: em.stack(xs, axis=axis))
    where = staticmethod(lambda c, a, b: em.where(c, a, b))
    clip = staticmethod(lambda x, lo, hi: x.clip(lo, hi))
    relu = staticmethod(lambda x: x.relu())
    sigmoid = staticmethod(lambda x: x.sigmoid())
    squeeze = staticmethod(lambda x, axis: x.squeeze(axis))
    unsqueeze = staticmethod(lambda x, axis: x.unsqueeze(axis))


class TO:
    """The same instruction set on torch."""

    leaf = staticmethod(lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True))
    const = staticmethod(lambda a: torch.tensor(a, dtype=torch.float64))

    @staticmethod
    def index(idx):
        """NumPy index arrays become torch tensors (alone or inside a tuple)."""
        one = lambda i: torch.from_numpy(i) if isinstance(i, numpy.ndarray) else i  # noqa: E731
        return tuple(one(i) for i in idx) if isinstance(idx, tuple) else one(idx)

    to_numpy = staticmethod(lambda t: t.detach().numpy())
    sum = staticmethod(lambda x, axis, keepdims: torch.sum(x, dim=_dims(axis, x.ndim), keepdim=keepdims))
    mean = staticmethod(lambda x, axis, keepdims: torch.mean(x, dim=_dims(axis, x.ndim), keepdim=keepdims))
    amax = staticmethod(lambda x, axis, keepdims: torch.amax(x, dim=_dims(axis, x.ndim), keepdim=keepdims))
    amin = staticmethod(lambda x, axis, keepdims: torch.amin(x, dim=_dims(axis, x.ndim), keepdim=keepdims))
    var = staticmethod(lambda x, axis, keepdims: torch.var(x, dim=_dims(axis, x.ndim), keepdim=keepdims))
    permute = staticmethod(lambda x, perm: x.permute(*perm))
    swap = staticmethod(lambda x, i, j: x.transpose(i, j))
    T = staticmethod(lambda x: x.T)
    reshape = staticmethod(lambda x, shape: x.reshape(*shape))
    cat = staticmethod(lambda xs, axis: torch.cat(xs, dim=axis))
    stack = staticmethod(lambda xs, axis: torch.stack(xs, dim=axis))
    where = staticmethod(lambda c, a, b: torch.where(c, a, b))
    clip = staticmethod(lambda x, lo, hi: x.clamp(lo, hi))
    relu = staticmethod(lambda x: x.relu())
    sigmoid = staticmethod(lambda x: x.sigmoid())
    squeeze = staticmethod(lambda x, axis: x.squeeze(axis))
    unsqueeze = staticmethod(lambda x, axis: x.unsqueeze(axis))


def assert_close(a, b, what: str) -> None:
    a, b = numpy.asarray(a), numpy.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    # A tiny absolute floor for values that cancel to ~0 (different summation orders).
    atol = RTOL * max(1.0, float(numpy.abs(b).max(initial=0.0)))
    numpy.testing.assert_allclose(a, b, rtol=RTOL, atol=atol, err_msg=what)
