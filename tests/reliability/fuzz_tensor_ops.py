"""Fuzz strategies for the PyTorch-fidelity tensor ops (math, pairwise, gather/scatter, rearranging ...).

``test_fuzz_api`` merges ``TENSOR_OP_CASES`` into its table, so the same
outcome rule (a correct result or a clear error naming the op) covers them.
"""

from __future__ import annotations


import numpy
from fuzz_support import Case, as_host, float_ref, operand_pair, tensors
from hypothesis import strategies as st

import ember as em
from ember.autograd.registry import OPS




UNARY_REF = {
    "sin": numpy.sin, "cos": numpy.cos, "log2": numpy.log2, "log10": numpy.log10, "exp2": numpy.exp2,
    "rsqrt": lambda x: 1 / numpy.sqrt(x), "floor": numpy.floor, "ceil": numpy.ceil, "trunc": numpy.trunc,
    "round": numpy.round, "sign": numpy.sign, "erf": None,
}
BINARY_REF = {"maximum": numpy.maximum, "minimum": numpy.minimum, "remainder": numpy.remainder,
              "floor_divide": numpy.floor_divide}
DUNDER = {"remainder": "__mod__", "floor_divide": "__floordiv__"}


def unary(name):
    @st.composite
    def make(draw):
        x = draw(tensors())
        method = draw(st.booleans())
        call = (lambda: getattr(x, name)()) if method else (lambda: OPS[name].fn(x))
        ref = UNARY_REF[name]
        return Case(call, None if ref is None else (lambda: ref(float_ref(x))), (x,))

    return make


def binary(name):
    @st.composite
    def make(draw):
        a, b = draw(operand_pair())
        if name in DUNDER and isinstance(a, em.Tensor) and draw(st.booleans()):
            call = lambda: getattr(a, DUNDER[name])(b)
        else:
            call = lambda: OPS[name].fn(a, b)
        return Case(call, lambda: BINARY_REF[name](float_ref(a), float_ref(b)), (a, b),
                       (name, "division by zero"))

    return make


@st.composite
def lerp_case(draw):
    a, b = draw(operand_pair())
    weight = draw(st.one_of(st.sampled_from([0.25, 1, "w", None]), tensors()))
    return Case(lambda: em.lerp(a, b, weight), None, (a, b))


index_dims = st.integers(-3, 3)


@st.composite
def index_tensor(draw, x):
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=max(x.ndim - 1, 0), max_size=x.ndim + 1)))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = draw(st.sampled_from([numpy.int64, numpy.int64, numpy.int32, numpy.float32]))
    return em.tensor(rng.integers(-1, 4, shape).astype(dtype))


@st.composite
def gather_case(draw):
    x = draw(tensors())
    dim, index = draw(index_dims), draw(index_tensor(x))
    return Case(lambda: em.gather(x, dim, index), None, (x,))


def scatter_like(name):
    @st.composite
    def make(draw):
        x = draw(tensors())
        dim, index = draw(index_dims), draw(index_tensor(x))
        src = draw(st.one_of(tensors(), st.sampled_from([1.5, 2, "s"])))
        return Case(lambda: OPS[name].fn(x, dim, index, src), None, (x, src))

    return make


@st.composite
def masked_fill_case(draw):
    x, mask = draw(tensors()), draw(tensors())
    if draw(st.booleans()):
        mask = mask > 0
    value = draw(st.one_of(st.sampled_from([0.5, -1, True, "v"]), tensors(shape=())))
    return Case(lambda: em.masked_fill(x, mask, value), None, (x,))


def triangle(name):
    @st.composite
    def make(draw):
        x, k = draw(tensors()), draw(st.integers(-3, 3))
        ref = lambda: (numpy.tril if name == "tril" else numpy.triu)(float_ref(x), k)
        return Case(lambda: OPS[name].fn(x, k), ref, (x,))

    return make


@st.composite
def diag_case(draw):
    x, k = draw(tensors()), draw(st.integers(-3, 3))
    ref = lambda: numpy.diag(float_ref(x), k)
    return Case(lambda: em.diag(x, k), ref, (x,))


def product(name):
    @st.composite
    def make(draw):
        n, k, m = draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(st.integers(0, 3))
        lead = (2,) if name == "bmm" else ()
        a = draw(tensors(shape=draw(st.sampled_from([lead + (n, k), (n, k), (k,), (3, n, k)]))))
        b = draw(tensors(shape=draw(st.sampled_from([lead + (k, m), (k, m), (m, k), (1, k, m)]))))
        return Case(lambda: OPS[name].fn(a, b), lambda: numpy.matmul(float_ref(a), float_ref(b)), (a, b))

    return make


sizes = st.lists(st.integers(-1, 3), max_size=4).map(tuple)


@st.composite
def repeat_case(draw):
    x, reps = draw(tensors()), draw(sizes)
    return Case(lambda: x.repeat(*reps), lambda: numpy.tile(float_ref(x), reps), (x,))


@st.composite
def repeat_interleave_case(draw):
    x = draw(tensors())
    repeats = draw(st.one_of(st.integers(-1, 3), tensors(dtypes=[em.int64, em.float32])))
    dim = draw(st.one_of(st.none(), index_dims))
    return Case(lambda: em.repeat_interleave(x, repeats, dim), None, (x,))


@st.composite
def flip_case(draw):
    x, dims = draw(tensors()), draw(st.lists(index_dims, max_size=3).map(tuple))
    return Case(lambda: em.flip(x, dims), None, (x,))


@st.composite
def roll_case(draw):
    x = draw(tensors())
    shifts = draw(st.one_of(st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=2).map(tuple)))
    dims = draw(st.one_of(st.none(), index_dims, st.lists(index_dims, max_size=2).map(tuple)))
    ref = None
    if dims is None and isinstance(shifts, int):
        ref = lambda: numpy.roll(float_ref(x), shifts)
    return Case(lambda: em.roll(x, shifts, dims), ref, (x,))


@st.composite
def unflatten_case(draw):
    x, dim, sz = draw(tensors()), draw(index_dims), draw(sizes)
    return Case(lambda: em.unflatten(x, dim, sz), None, (x,))


def pieces(name):
    @st.composite
    def make(draw):
        x, dim = draw(tensors()), draw(index_dims)
        arg = draw(st.one_of(st.integers(-1, 4), st.lists(st.integers(-1, 3), max_size=3), st.just(1.5)))

        def call():
            parts = OPS[name].fn(x, arg, dim)
            assert isinstance(parts, tuple) and all(isinstance(p, em.Tensor) for p in parts)
            return em.cat(list(parts), dim) if parts else x  # the pieces put back together are the input

        return Case(call, lambda: as_host(x), (x,))

    return make


TENSOR_OP_CASES = {
    **{name: unary(name) for name in UNARY_REF},
    **{name: binary(name) for name in BINARY_REF},
    "lerp": lerp_case, "gather": gather_case, "scatter": scatter_like("scatter"),
    "scatter_add": scatter_like("scatter_add"), "masked_fill": masked_fill_case,
    "tril": triangle("tril"), "triu": triangle("triu"), "diag": diag_case, "mm": product("mm"),
    "bmm": product("bmm"), "repeat": repeat_case, "repeat_interleave": repeat_interleave_case, "flip": flip_case,
    "roll": roll_case, "unflatten": unflatten_case, "split": pieces("split"), "chunk": pieces("chunk"),
}
