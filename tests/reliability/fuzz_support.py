"""Shared pieces of the API fuzzers: hypothesis strategies for operands and the outcome rule.

The rule (issue 8): calling a public op with any input either returns a
correct result, or raises an ember exception, i.e. a ``ValueError``,
``TypeError`` or ``RuntimeError`` whose message names the op.  ``attempt``
enforces it; any other exception type (IndexError, KeyError, AttributeError,
ZeroDivisionError, MemoryError ...) propagates and fails the test, and so does
an accepted type whose message does not name the op (a NumPy error leaking).

``EMBER_FUZZ_EXAMPLES`` sets hypothesis' ``max_examples`` per test (default
25); ``EMBER_FUZZ_REPORT=1`` prints how many cases ran and how they ended.
"""

from __future__ import annotations

import collections
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember as em


@dataclass
class Case:
    """One drawn call: the thunk, an optional NumPy reference thunk and the tensors involved."""

    call: Callable[[], Any]
    ref: Callable[[], Any] | None = None
    inputs: tuple = ()
    names: tuple = field(default_factory=tuple)

EXAMPLES = int(os.environ.get("EMBER_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
ACCEPTED = (ValueError, TypeError, RuntimeError)
STATS: collections.Counter = collections.Counter()

DTYPES = [em.float16, em.float32, em.float64, em.int32, em.int64, em.bool_]
FLOATS = [em.float16, em.float32, em.float64]
DEVICES = ["cpu"] + (["cuda"] if em.cuda.is_available() else [])
TOLERANCE = {numpy.dtype(numpy.float16): 2e-2, numpy.dtype(numpy.float32): 1e-4, numpy.dtype(numpy.float64): 1e-9}


class Rejected:
    """The value ``attempt`` returns when the op raised an accepted exception."""

    def __init__(self, error: BaseException):
        self.error = error


def attempt(names: str | tuple, call, *args, **kwargs):
    """Call ``call(*args, **kwargs)``; an accepted error must name one of ``names``."""
    names = (names,) if isinstance(names, str) else names
    STATS["cases"] += 1
    try:
        with warnings.catch_warnings(), numpy.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            out = call(*args, **kwargs)
    except ACCEPTED as e:
        message = str(e).lower()
        assert any(n.lower() in message for n in names), (
            f"{type(e).__name__} does not name the op (one of {names}): {e}"
        )
        STATS["clear errors"] += 1
        return Rejected(e)
    STATS["results"] += 1
    return out


def check_result(out, names, inputs=()) -> None:
    """A returned value is a well-formed Tensor; if it is differentiable, so is its backward."""
    assert isinstance(out, em.Tensor), type(out)
    shape = tuple(out.shape)
    assert all(isinstance(s, int) and s >= 0 for s in shape), shape
    assert out.numpy().shape == shape
    if out.requires_grad and out.dtype.kind == "f":
        backward_names = tuple(names) + ("backward",) if not isinstance(names, str) else (names, "backward")
        result = attempt(backward_names, lambda: out.sum().backward())
        if not isinstance(result, Rejected):
            STATS["backward ok"] += 1
            for t in inputs:
                if isinstance(t, em.Tensor) and t.requires_grad and t.grad is not None:
                    assert tuple(t.grad.shape) == tuple(t.shape) and t.grad.dtype == t.dtype


def assert_close(out, ref) -> None:
    """``out`` (a Tensor) equals the NumPy float64 reference ``ref`` to its dtype's tolerance."""
    ref = numpy.asarray(ref)
    got = out.numpy()
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if got.dtype.kind == "f":
        tol = TOLERANCE[got.dtype]
        ref = ref.astype(numpy.float64)
        ok = numpy.isfinite(ref) & (numpy.abs(ref) < 1e4)  # float16 overflows above 65504
        numpy.testing.assert_allclose(got.astype(numpy.float64)[ok], ref[ok], rtol=tol, atol=tol)
    elif ref.dtype.kind in "iub" and got.dtype.kind in "iub":
        small = numpy.abs(ref.astype(numpy.float64)) < 2**31  # wrapped int overflow is NumPy's too
        numpy.testing.assert_array_equal(got[small], ref[small])


# ---------------------------------------------------------------- strategies
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


def host_values(rng: numpy.random.Generator, shape: tuple, dtype) -> numpy.ndarray:
    """Seeded host data of ``dtype``: floats in [-3, 3], ints in [-3, 3], random bools."""
    dtype = numpy.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-3, 3, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    return rng.integers(-3, 4, shape).astype(dtype)


@st.composite
def tensors(draw, shape=None, dtypes=DTYPES, grad=None):
    """A Tensor of a drawn shape/dtype/device; floating ones may require grad."""
    shape = draw(shapes) if shape is None else shape
    dtype = draw(st.sampled_from(dtypes))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**16)))
    device = draw(st.sampled_from(DEVICES))
    t = em.tensor(host_values(rng, shape, dtype), dtype=dtype, device=device)
    wants = draw(st.booleans()) if grad is None else grad
    if wants and numpy.dtype(dtype).kind == "f":
        t.requires_grad_(True)
    return t


@st.composite
def operands(draw, shape=None):
    """A Tensor (mostly), or a Python scalar, a NumPy array or a list, as an op's argument."""
    kind = draw(st.sampled_from(["tensor"] * 5 + ["int", "float", "bool", "ndarray", "list"]))
    if kind == "tensor":
        return draw(tensors(shape=shape))
    if kind == "int":
        return draw(st.integers(-3, 3))
    if kind == "float":
        return draw(st.sampled_from([0.0, -1.5, 2.5, 1e-3, float("inf"), float("nan")]))
    if kind == "bool":
        return draw(st.booleans())
    shape = draw(shapes) if shape is None else shape
    rng = numpy.random.default_rng(draw(st.integers(0, 2**16)))
    array = host_values(rng, shape, draw(st.sampled_from(DTYPES)))
    return array if kind == "ndarray" else array.tolist()


@st.composite
def operand_pair(draw):
    """Two operands whose shapes broadcast (mostly) or do not."""
    if draw(st.integers(0, 3)) == 0:
        sa, sb = draw(shapes), draw(shapes)
    else:
        sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                                        max_side=4)).input_shapes
    return draw(operands(shape=sa)), draw(operands(shape=sb))


axes = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.lists(st.integers(-5, 5), min_size=0, max_size=3).map(tuple),
)


def as_host(value) -> numpy.ndarray:
    """An operand as a NumPy array (for the reference computation)."""
    if isinstance(value, em.Tensor):
        return value.numpy()
    return numpy.asarray(value)


def float_ref(value) -> numpy.ndarray:
    return as_host(value).astype(numpy.float64)


def report(module: str) -> None:
    """Print the case counts when ``EMBER_FUZZ_REPORT`` is set (run pytest with ``-s``)."""
    if os.environ.get("EMBER_FUZZ_REPORT"):
        print(f"\n[{module}] fuzz cases: {dict(STATS)}")
