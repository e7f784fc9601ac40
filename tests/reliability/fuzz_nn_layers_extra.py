"""Fuzz strategies for the layers of PyTorch's extra activations, losses, convolutions and
resizing; joined into ``test_fuzz_nn.py``'s ``LAYERS`` (same entry format: names an error may
carry, and a strategy of ``(constructor thunk, inputs)``)."""

from __future__ import annotations

from fuzz_support import tensors
from hypothesis import strategies as st

import ember as em

sizes = st.one_of(st.integers(-1, 4), st.sampled_from([1.5, "3", None, True]))
kernels = st.one_of(st.integers(-1, 4), st.tuples(st.integers(-1, 3), st.integers(-1, 3)), st.just((1, 2, 3)))
reductions = st.sampled_from(["mean", "sum", "none", "avg", 0])


@st.composite
def image(draw):
    shape = draw(st.sampled_from([(2, 3, 5, 5), (1, 1, 4, 4), (0, 3, 4, 4), (2, 3, 0, 4), (3, 5, 5), (2, 3)]))
    return draw(tensors(shape=shape))


@st.composite
def sequence(draw):
    return draw(tensors(shape=draw(st.sampled_from([(2, 3, 6), (1, 1, 4), (0, 3, 5), (3, 5), (2, 3, 0)]))))


def _plain(name, op):
    return ((name, op), st.tuples(st.just(lambda: getattr(em.nn, name)()), st.tuples(tensors())))


def _one_arg(name, op, values):
    return ((name, op), st.tuples(st.builds(lambda v: (lambda: getattr(em.nn, name)(v)), values),
                                   st.tuples(tensors())))


LAYERS_EXTRA = {
    "GELU": (("GELU", "gelu"), st.tuples(st.builds(lambda a: (lambda: em.nn.GELU(a)),
                                                    st.sampled_from(["none", "tanh", "exact"])),
                                          st.tuples(tensors()))),
    "SiLU": _plain("SiLU", "silu"), "Mish": _plain("Mish", "mish"), "LogSigmoid": _plain("LogSigmoid", "logsigmoid"),
    "SELU": _plain("SELU", "selu"), "ReLU6": _plain("ReLU6", "relu6"),
    "Hardsigmoid": _plain("Hardsigmoid", "hardsigmoid"), "Hardswish": _plain("Hardswish", "hardswish"),
    "Softplus": _one_arg("Softplus", "softplus", st.sampled_from([1.0, 2.0, 0.0, -1.0])),
    "ELU": _one_arg("ELU", "elu", st.sampled_from([1.0, 0.5, -1.0])),
    "LeakyReLU": _one_arg("LeakyReLU", "leaky_relu", st.sampled_from([0.01, 0.2, -1.0])),
    "Hardtanh": (("Hardtanh", "hardtanh"), st.tuples(
        st.builds(lambda lo, hi: (lambda: em.nn.Hardtanh(lo, hi)), st.sampled_from([-1.0, 0.0, 2.0]),
                  st.sampled_from([1.0, 0.5, -2.0])), st.tuples(tensors()))),
    "NLLLoss": (("NLLLoss", "nll_loss"), st.tuples(
        st.builds(lambda w, i, r: (lambda: em.nn.NLLLoss(w, i, r)),
                  st.one_of(st.none(), tensors(shape=(3,), grad=False)), st.sampled_from([-100, 0, 2]), reductions),
        st.tuples(tensors(shape=(2, 3)), st.one_of(tensors(shape=(2,)), st.lists(st.integers(-1, 4), max_size=3))))),
    "BCELoss": (("BCELoss", "binary_cross_entropy"), st.tuples(
        st.builds(lambda r: (lambda: em.nn.BCELoss(reduction=r)), reductions), st.tuples(tensors(), tensors()))),
    "BCEWithLogitsLoss": (("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"), st.tuples(
        st.builds(lambda r, p: (lambda: em.nn.BCEWithLogitsLoss(reduction=r, pos_weight=p)), reductions,
                  st.one_of(st.none(), tensors(shape=(3,), grad=False))),
        st.tuples(tensors(), tensors()))),
    "ConvTranspose2d": (("ConvTranspose2d", "conv_transpose2d"), st.tuples(
        st.builds(lambda c, o, k, s, p, g: (lambda: em.nn.ConvTranspose2d(c, o, k, s, p, groups=g)),
                  sizes, sizes, kernels, kernels, st.sampled_from([0, 1, -1]), st.sampled_from([1, 3, 0])),
        st.tuples(image()))),
    "Conv1d": (("Conv1d", "conv1d"), st.tuples(
        st.builds(lambda c, o, k, s, p, d: (lambda: em.nn.Conv1d(c, o, k, s, p, d)),
                  sizes, sizes, st.integers(-1, 4), st.integers(-1, 2), st.sampled_from([0, 1, "same", -1]),
                  st.integers(0, 2)),
        st.tuples(sequence()))),
    "AdaptiveAvgPool2d": (("AdaptiveAvgPool2d", "adaptive_avg_pool2d"), st.tuples(
        st.builds(lambda o: (lambda: em.nn.AdaptiveAvgPool2d(o)), st.sampled_from([1, (2, 3), (None, 2), 0, -1])),
        st.tuples(image()))),
    "Upsample": (("Upsample", "interpolate"), st.tuples(
        st.builds(lambda s, f, m: (lambda: em.nn.Upsample(s, f, m)), st.sampled_from([None, 3, (2, 4)]),
                  st.sampled_from([None, 2, 0.5]), st.sampled_from(["nearest", "bilinear", "cubic"])),
        st.tuples(image()))),
}
