"""Whole-model precision changes for inference: a converted copy, and the book's rounding.

``converted_copy(model, dtype)`` is a separate model whose weights are stored
and computed in ``dtype`` (true float16 arithmetic after ``.half()``); the
training model is untouched.  ``rounded_copy(model, dtype)`` is the book's
bit-reduction experiment (ch. 8): the weights are rounded to ``dtype``'s values
but kept in the original storage, so the arithmetic stays in higher precision
and only the information lost by the rounding shows in the accuracy.
"""

from __future__ import annotations

import copy
from typing import Any

from ember import dtypes
from ember.autograd.grad_mode import no_grad
from ember.errors import DTypeError


def _floating(dtype: Any, op: str) -> Any:
    """``dtype`` normalised; only float16/32/64 are accepted."""
    dt = dtypes.to_dtype(dtype, op)
    if dt not in dtypes.FLOATING:
        raise DTypeError(f"{op}: expected float16, float32 or float64, got {dt}")
    return dt


def converted_copy(model: Any, dtype: Any) -> Any:
    """A deep copy of ``model`` with every floating parameter and buffer converted to ``dtype``.

    Raises:
        DTypeError: ``dtype`` is not floating.
    """
    dt = _floating(dtype, "converted_copy")
    clone = copy.deepcopy(model)
    return clone.to(dt)


def rounded_copy(model: Any, dtype: Any) -> Any:
    """A deep copy of ``model`` whose floating weights hold ``dtype``-rounded values in their own storage.

    Raises:
        DTypeError: ``dtype`` is not floating.
    """
    dt = _floating(dtype, "rounded_copy")
    clone = copy.deepcopy(model)
    with no_grad():
        for t in clone.state_dict().values():
            if t.dtype.kind == "f":
                t.data[...] = t.data.astype(dt).astype(t.dtype)
                t._bump_version()
    return clone
