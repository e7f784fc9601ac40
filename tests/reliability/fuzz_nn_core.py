"""Fuzz strategies for the core nn ops (softmax, losses, linear, dropout, batch norm, conv, pooling)."""

from __future__ import annotations

import numpy
from fuzz_support import Case, float_ref, operand_pair, operands, tensors
from hypothesis import strategies as st

import ember as em
from ember.autograd.registry import OPS


def softmax_ref(x, axis, log):
    z = x - x.max(axis=axis, keepdims=True)
    lse = numpy.log(numpy.exp(z).sum(axis=axis, keepdims=True))
    return z - lse if log else numpy.exp(z - lse)


def softmax_like(name):
    @st.composite
    def make(draw):
        x, axis = draw(tensors()), draw(st.integers(-4, 4))
        ref = lambda: softmax_ref(float_ref(x), axis, name == "log_softmax")
        return Case(lambda: OPS[name].fn(x, axis), ref, (x,), (name, "softmax"))

    return make


reductions_arg = st.sampled_from(["mean", "sum", "none", "max", 3])


def classification_loss(name):
    @st.composite
    def make(draw):
        n, c = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        logits = draw(tensors(shape=draw(st.sampled_from([(n, c), (n,), (n, c, 2), ()]))))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            target = em.tensor(numpy.asarray(draw(st.lists(st.integers(-1, c), min_size=n, max_size=n)),
                                             dtype=numpy.int64))
        elif kind == 1:
            target = draw(tensors(shape=(n, c)))
        else:
            target = draw(operands())
        reduction = draw(reductions_arg)
        return Case(lambda: OPS[name].fn(logits, target, reduction), None, (logits,),
                    (name, "cross_entropy", "nll_loss"))

    return make


@st.composite
def mse_case(draw):
    a, b = draw(operand_pair())
    reduction = draw(reductions_arg)
    return Case(lambda: em.nn.functional.mse_loss(a, b, reduction), None, (a, b))


def linear_like(name):
    """linear and linear_relu (linear followed by ReLU) take the same arguments."""

    @st.composite
    def case(draw):
        i, o = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        x = draw(tensors(shape=draw(st.sampled_from([(2, i), (i,), (2, 2, i), (2, i + 1), ()]))))
        w = draw(tensors(shape=draw(st.sampled_from([(o, i), (i, o), (o,)]))))
        b = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(o,), (o + 1,), (1, o)])))))
        return Case(lambda: OPS[name].fn(x, w, b), None, (x, w, b), (name,))

    return case


@st.composite
def dropout_case(draw):
    x = draw(tensors())
    p = draw(st.sampled_from([0.0, 0.3, 1.0, -0.1, 1.5, 0.5]))
    training = draw(st.booleans())
    return Case(lambda: em.nn.functional.dropout(x, p, training), None, (x,))


@st.composite
def batch_norm_case(draw):
    c = draw(st.integers(0, 3))
    x = draw(tensors(shape=draw(st.sampled_from([(2, c), (1, c), (2, c, 2, 2), (c,), (0, c), (2, c, 3)]))))
    stat = lambda: st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(c,), (c + 1,)])), grad=False))
    rm, rv, w, b = draw(stat()), draw(stat()), draw(stat()), draw(stat())
    training, momentum, eps = draw(st.booleans()), draw(st.sampled_from([0.1, 0.0, 1.5])), draw(
        st.sampled_from([1e-5, 0.0, -1.0]))
    return Case(lambda: em.nn.functional.batch_norm(x, rm, rv, w, b, training, momentum, eps), None, (x,))


hyper = st.one_of(st.integers(-1, 4), st.tuples(st.integers(-1, 3), st.integers(-1, 3)), st.just((1, 2, 3)),
                  st.just(1.5))


@st.composite
def image(draw):
    shape = draw(st.sampled_from([(1, 2, 5, 5), (2, 1, 4, 3), (0, 1, 4, 4), (1, 1, 0, 3), (2, 3, 3), (1, 2, 2, 2, 2)]))
    return draw(tensors(shape=shape))


def conv_like(name):
    """conv2d and conv2d_relu (conv2d followed by ReLU) take the same arguments."""

    @st.composite
    def make(draw):
        x = draw(image())
        w = draw(tensors(shape=draw(st.sampled_from([(3, 2, 3, 3), (2, 1, 2, 2), (1, 1, 6, 6), (2, 1, 0, 2),
                                                     (2, 2, 3)]))))
        b = draw(st.one_of(st.none(), tensors(shape=draw(st.sampled_from([(3,), (2,), (1,)])))))
        stride, padding = draw(hyper), draw(hyper)
        return Case(lambda: OPS[name].fn(x, w, b, stride, padding), None, (x, w, b), (name,))

    return make


@st.composite
def im2col_case(draw):
    x = draw(image())
    kh, kw, stride, padding = draw(hyper), draw(hyper), draw(hyper), draw(hyper)
    return Case(lambda: em.nn.functional.im2col(x, kh, kw, stride, padding), None, (x,))


@st.composite
def col2im_case(draw):
    col = draw(tensors(shape=draw(st.sampled_from([(1, 2, 2, 2, 4, 4), (1, 2, 2, 2, 3, 3), (2, 3), ()]))))
    shape = draw(st.sampled_from([(1, 2, 5, 5), (1, 2, 4, 4), (1, 2, 5), (0, 2, 5, 5), (1, -2, 5, 5)]))
    kh, kw, stride, padding = draw(hyper), draw(hyper), draw(hyper), draw(hyper)
    return Case(lambda: em.nn.functional.col2im(col, shape, kh, kw, stride, padding), None, (col,))


def pool(name):
    @st.composite
    def make(draw):
        x = draw(image())
        kernel, stride, padding = draw(hyper), draw(st.one_of(st.none(), hyper)), draw(hyper)
        return Case(lambda: OPS[name].fn(x, kernel, stride, padding), None, (x,), (name, "pool"))

    return make


NN_CORE_CASES = {
    **{name: softmax_like(name) for name in ("softmax", "log_softmax")},
    **{name: classification_loss(name) for name in ("cross_entropy", "nll_loss")},
    **{name: pool(name) for name in ("max_pool2d", "avg_pool2d")},
    "mse_loss": mse_case, "linear": linear_like("linear"), "linear_relu": linear_like("linear_relu"),
    "dropout": dropout_case, "batch_norm": batch_norm_case,
    "conv2d": conv_like("conv2d"), "conv2d_relu": conv_like("conv2d_relu"), "im2col": im2col_case,
    "col2im": col2im_case,
}
