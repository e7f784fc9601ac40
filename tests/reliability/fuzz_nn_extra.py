"""Fuzz strategies for PyTorch's extra nn.functional ops (activations, binary cross-entropies, pad,
conv1d / conv_transpose2d, interpolate, adaptive pooling, normalize, attention, einsum).

Imported by ``test_fuzz_api.py`` into its ``CASES``; each strategy draws valid and invalid
arguments, and the outcome rule is ``fuzz_support.attempt``'s (a result, or an error naming the op).
"""

from __future__ import annotations


import numpy
from fuzz_support import Case, float_ref, operands, tensors
from hypothesis import strategies as st

import ember as em
import ember.nn.functional as F




def _case(call, ref=None, inputs=(), names=()):
    return Case(call, ref, inputs, names)


ACTIVATION_REF = {
    "relu6": lambda x: numpy.clip(x, 0, 6),
    "hardtanh": lambda x: numpy.clip(x, -1, 1),
    "leaky_relu": lambda x: numpy.where(x > 0, x, 0.01 * x),
    "silu": lambda x: x / (1 + numpy.exp(-x)),
    "softplus": lambda x: numpy.where(x > 20, x, numpy.log1p(numpy.exp(numpy.minimum(x, 20)))),
    "elu": lambda x: numpy.where(x > 0, x, numpy.expm1(numpy.minimum(x, 0))),
    "hardsigmoid": lambda x: numpy.clip(x / 6 + 0.5, 0, 1),
    "hardswish": lambda x: x * numpy.clip(x + 3, 0, 6) / 6,
    "logsigmoid": lambda x: -numpy.logaddexp(0, -x),
    "mish": lambda x: x * numpy.tanh(numpy.logaddexp(0, x)),
    "gelu": None,
    "selu": None,
}


def activation(name):
    @st.composite
    def make(draw):
        x = draw(st.one_of(tensors(), operands()))
        ref = ACTIVATION_REF[name]
        return _case(lambda: getattr(F, name)(x), None if ref is None else (lambda: ref(float_ref(x))), (x,))

    return make


reductions = st.sampled_from(["mean", "sum", "none", "max", 3])


def binary_ce(name):
    @st.composite
    def make(draw):
        shape = draw(st.sampled_from([(2, 3), (3,), (), (0, 2)]))
        x = draw(tensors(shape=shape))
        if name == "binary_cross_entropy" and x.dtype.kind == "f" and draw(st.booleans()):
            x = em.tensor(numpy.clip(x.numpy() / 6 + 0.5, 0, 1), requires_grad=x.requires_grad)
        t = draw(st.one_of(tensors(shape=shape), operands()))
        w = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(3,), (2,), (1, 3)])))))
        kw = {"reduction": draw(reductions), "weight": w}
        if name.endswith("logits"):
            kw["pos_weight"] = draw(st.one_of(st.none(), tensors(shape=(3,))))
        return _case(lambda: getattr(F, name)(x, t, **kw), None, (x, t), (name,))

    return make


@st.composite
def pad_case(draw):
    x = draw(tensors())
    pad = draw(st.sampled_from([(1, 2), (0, 0), (1, 1, 2, 0), (-1, 2), (3, 3, 3, 3), (1, 2, 3), (1,) * 10, "a",
                                (1.5, 1), (-5, -5)]))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular", "wrap"]))
    value = draw(st.sampled_from([None, 0.0, 2.5]))
    return _case(lambda: F.pad(x, pad, mode, value), None, (x,), ("pad",))


small = st.sampled_from([1, 2, 0, -1, (1,), (2, 1)])


@st.composite
def conv1d_case(draw):
    x = draw(tensors(shape=draw(st.sampled_from([(1, 2, 5), (2, 1, 4), (0, 2, 4), (1, 2), (1, 2, 0)]))))
    w = draw(tensors(shape=draw(st.sampled_from([(3, 2, 3), (2, 1, 2), (2, 2, 9), (2, 2, 3, 3)]))))
    b = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(3,), (2,)])))))
    padding = draw(st.sampled_from([0, 1, "same", "valid", "full", -1]))
    stride, dilation, groups = draw(small), draw(small), draw(st.sampled_from([1, 2, 0, 3]))
    return _case(lambda: F.conv1d(x, w, b, stride, padding, dilation, groups), None, (x, w, b), ("conv1d",))


@st.composite
def conv_transpose_case(draw):
    x = draw(tensors(shape=draw(st.sampled_from([(1, 2, 3, 3), (2, 4, 2, 3), (0, 2, 3, 3), (1, 2, 3)]))))
    w = draw(tensors(shape=draw(st.sampled_from([(2, 3, 2, 2), (4, 1, 3, 3), (2, 1, 1, 1), (2, 3, 2)]))))
    b = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(3,), (2,)])))))
    stride, padding, out_pad = draw(small), draw(st.sampled_from([0, 1, 3, -1])), draw(st.sampled_from([0, 1, 2]))
    groups, dilation = draw(st.sampled_from([1, 2, 0])), draw(small)
    return _case(lambda: F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation), None, (x, w, b),
                 ("conv_transpose2d",))


@st.composite
def interpolate_case(draw):
    x = draw(tensors(shape=draw(st.sampled_from([(1, 2, 3, 4), (1, 1, 5), (1, 1, 2, 2, 2), (1, 1, 0, 3), (2, 3)]))))
    size = draw(st.sampled_from([None, 4, (2, 5), (0, 2), (1, 2, 3)]))
    scale = draw(st.sampled_from([None, 2, 0.5, (1.5, 2.0), -1.0]))
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "bicubic"]))
    corners = draw(st.sampled_from([None, True, False]))
    return _case(lambda: F.interpolate(x, size, scale, mode, corners), None, (x,), ("interpolate",))


@st.composite
def adaptive_case(draw):
    x = draw(tensors(shape=draw(st.sampled_from([(1, 2, 5, 5), (2, 3, 4), (1, 1, 0, 3), (3,), (1, 2, 3, 4, 5)]))))
    out = draw(st.sampled_from([1, (2, 3), (None, 2), 0, (1, 2, 3), -1, 7]))
    return _case(lambda: F.adaptive_avg_pool2d(x, out), None, (x,), ("adaptive_avg_pool2d",))


@st.composite
def normalize_case(draw):
    x = draw(st.one_of(tensors(), operands()))
    p, dim = draw(st.sampled_from([2.0, 1.0, 3.0, 0.0, -1.0])), draw(st.integers(-3, 3))
    return _case(lambda: F.normalize(x, p, dim), None, (x,), ("normalize",))


@st.composite
def attention_case(draw):
    shape = lambda: st.sampled_from([(2, 3, 4), (2, 5, 4), (2, 5, 6), (5, 4), (3,), (0, 5, 4)])  # noqa: E731
    q, k, v = draw(tensors(shape=draw(shape()))), draw(tensors(shape=draw(shape()))), draw(tensors(shape=draw(shape())))
    mask = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(3, 5), (5, 5), (2, 3, 5), (4,)])))))
    causal = draw(st.booleans())
    return _case(lambda: F.scaled_dot_product_attention(q, k, v, mask, 0.0, causal), None, (q, k, v),
                 ("scaled_dot_product_attention",))


@st.composite
def einsum_case(draw):
    eq = draw(st.sampled_from(["ij,jk->ik", "ij->i", "...ij,...j->...i", "ii->i", "ij,ij->", "i,j", "ij->iz",
                               "ij,jk", "a.b", "ij->ii", "", "ij,jk,kl->il"]))
    ops = draw(st.lists(tensors(shape=draw(st.sampled_from([(2, 3), (3, 3), (3, 4), (1, 3), (0, 3), (3,)]))),
                        min_size=1, max_size=3))
    return _case(lambda: em.einsum(eq, *ops), None, tuple(ops), ("einsum",))


NN_EXTRA_CASES = {
    **{name: activation(name) for name in ACTIVATION_REF},
    **{name: binary_ce(name) for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits")},
    "pad": pad_case, "conv1d": conv1d_case, "conv_transpose2d": conv_transpose_case,
    "interpolate": interpolate_case, "adaptive_avg_pool2d": adaptive_case, "normalize": normalize_case,
    "scaled_dot_product_attention": attention_case, "einsum": einsum_case,
}
