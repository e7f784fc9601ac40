"""Hypothesis fuzzing of ``ember.nn``: every layer's constructor and forward, and state-dict loading.

Constructor arguments are drawn from sensible and nonsense values (zero,
negative, float and tuple sizes, bad probabilities and reductions); inputs are
tensors of any shape and dtype.  The rule is ``fuzz_support.attempt``'s: a
result, or a ValueError/TypeError/RuntimeError naming the layer (its class
name or the functional op it calls).  A completeness test fails when a layer
exported by ``ember.nn`` has no strategy here.
"""

from __future__ import annotations

import inspect

import numpy
import pytest
from fuzz_support import FUZZ, Rejected, attempt, check_result, report, tensors
from fuzz_nn_layers_extra import LAYERS_EXTRA
from hypothesis import given
from hypothesis import strategies as st

import ember as em

sizes = st.one_of(st.integers(-1, 4), st.sampled_from([1.5, "3", None, True]))
kernels = st.one_of(st.integers(-1, 4), st.tuples(st.integers(-1, 3), st.integers(-1, 3)), st.just((1, 2, 3)))
probabilities = st.sampled_from([0.0, 0.5, 1.0, -0.2, 1.2, "0.5"])
reductions = st.sampled_from(["mean", "sum", "none", "avg", 0])
axes = st.one_of(st.none(), st.integers(-4, 4))


@st.composite
def image(draw):
    shape = draw(st.sampled_from([(2, 3, 5, 5), (1, 1, 4, 4), (0, 3, 4, 4), (2, 3, 0, 4), (3, 5, 5), (2, 3)]))
    return draw(tensors(shape=shape))


@st.composite
def features(draw, n=None):
    n = draw(st.integers(0, 4)) if n is None else n
    shape = draw(st.sampled_from([(2, n), (n,), (3, 2, n), (2, n + 1), (0, n), (2, n, 3)]))
    return draw(tensors(shape=shape))


# Each entry: (names an error may carry, strategy of (constructor thunk, inputs)).
LAYERS = {
    "Linear": (("Linear", "linear"), st.tuples(
        st.builds(lambda i, o, b: (lambda: em.nn.Linear(i, o, bias=b)), sizes, sizes, st.booleans()),
        st.tuples(features()))),
    "Conv2d": (("Conv2d", "conv2d"), st.tuples(
        st.builds(lambda c, o, k, s, p: (lambda: em.nn.Conv2d(c, o, k, stride=s, padding=p)),
                  sizes, sizes, kernels, kernels, kernels),
        st.tuples(image()))),
    "MaxPool2d": (("MaxPool2d", "max_pool2d"), st.tuples(
        st.builds(lambda k, s, p: (lambda: em.nn.MaxPool2d(k, s, p)), kernels, st.none() | kernels, kernels),
        st.tuples(image()))),
    "AvgPool2d": (("AvgPool2d", "avg_pool2d"), st.tuples(
        st.builds(lambda k, s, p: (lambda: em.nn.AvgPool2d(k, s, p)), kernels, st.none() | kernels, kernels),
        st.tuples(image()))),
    "BatchNorm1d": (("BatchNorm1d", "batch_norm"), st.tuples(
        st.builds(lambda n, e, m, a, t: (lambda: em.nn.BatchNorm1d(n, e, m, a, t)), sizes,
                  st.sampled_from([1e-5, 0.0, -1.0]), st.sampled_from([0.1, None, 2.0]), st.booleans(), st.booleans()),
        st.tuples(features()))),
    "BatchNorm2d": (("BatchNorm2d", "batch_norm"), st.tuples(
        st.builds(lambda n, e, m, a, t: (lambda: em.nn.BatchNorm2d(n, e, m, a, t)), sizes,
                  st.sampled_from([1e-5, 0.0]), st.sampled_from([0.1, None]), st.booleans(), st.booleans()),
        st.tuples(image()))),
    "Dropout": (("Dropout", "dropout"), st.tuples(
        st.builds(lambda p: (lambda: em.nn.Dropout(p)), probabilities), st.tuples(tensors()))),
    "ReLU": (("ReLU", "relu"), st.tuples(st.just(lambda: em.nn.ReLU()), st.tuples(tensors()))),
    "Sigmoid": (("Sigmoid",), st.tuples(st.just(lambda: em.nn.Sigmoid()), st.tuples(tensors()))),
    "Tanh": (("Tanh",), st.tuples(st.just(lambda: em.nn.Tanh()), st.tuples(tensors()))),
    "Softmax": (("Softmax",), st.tuples(st.builds(lambda a: (lambda: em.nn.Softmax(a)), axes),
                                         st.tuples(tensors()))),
    "LogSoftmax": (("LogSoftmax", "log_softmax"), st.tuples(st.builds(lambda a: (lambda: em.nn.LogSoftmax(a)), axes),
                                                            st.tuples(tensors()))),
    "Flatten": (("Flatten",), st.tuples(
        st.builds(lambda s, e: (lambda: em.nn.Flatten(s, e)), st.integers(-5, 5), st.integers(-5, 5)),
        st.tuples(tensors()))),
    "Identity": (("Identity",), st.tuples(st.just(lambda: em.nn.Identity()), st.tuples(tensors()))),
    "CrossEntropyLoss": (("CrossEntropyLoss", "cross_entropy"), st.tuples(
        st.builds(lambda r: (lambda: em.nn.CrossEntropyLoss(r)), reductions),
        st.tuples(features(), st.one_of(tensors(), st.lists(st.integers(-1, 4), max_size=3))))),
    "MSELoss": (("MSELoss", "mse_loss"), st.tuples(
        st.builds(lambda r: (lambda: em.nn.MSELoss(r)), reductions), st.tuples(tensors(), tensors()))),
    "Sequential": (("Sequential", "linear", "Linear", "relu"), st.tuples(
        st.builds(lambda i, o: (lambda: em.nn.Sequential(em.nn.Linear(3, i), em.nn.ReLU(), em.nn.Linear(o, 2))),
                  st.integers(1, 4), st.integers(1, 4)),
        st.tuples(features(3)))),
    **LAYERS_EXTRA,
}


def test_every_layer_is_fuzzed():
    exported = {n for n, v in vars(em.nn).items() if inspect.isclass(v) and issubclass(v, em.nn.Module)}
    containers = {"Module", "ModuleList", "ModuleDict", "ParameterList", "Parameter"}  # no forward of their own
    missing = exported - set(LAYERS) - containers
    assert not missing, f"add a fuzz strategy for {sorted(missing)}"


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    report("nn")


@pytest.mark.parametrize("name", sorted(LAYERS))
@FUZZ
@given(data=st.data())
def test_layer_gives_a_result_or_a_clear_error(name, data):
    names, strategy = LAYERS[name]
    make, inputs = data.draw(strategy, label=name)
    layer = attempt(names, make)
    if isinstance(layer, Rejected):
        return
    if data.draw(st.booleans(), label="eval"):
        layer.eval()
    out = attempt(names, layer, *inputs)
    if isinstance(out, Rejected):
        return
    check_result(out, names, tuple(inputs) + tuple(layer.parameters()))


@FUZZ
@given(data=st.data())
def test_load_state_dict_with_wrong_entries_is_a_clear_error(data):
    model = em.nn.Sequential(em.nn.Linear(3, 4), em.nn.BatchNorm1d(4), em.nn.Linear(4, 2))
    state = dict(model.state_dict())
    key = data.draw(st.sampled_from(sorted(state)))
    change = data.draw(st.sampled_from(["shape", "dtype", "drop", "extra", "not-a-tensor", "ndarray"]))
    if change == "shape":
        state[key] = em.zeros(*(tuple(state[key].shape) + (2,)))
    elif change == "dtype":
        state[key] = state[key].to(em.float64)
    elif change == "drop":
        del state[key]
    elif change == "extra":
        state["unknown.weight"] = em.zeros(1)
    elif change == "not-a-tensor":
        state[key] = "text"
    else:
        state[key] = numpy.zeros(tuple(state[key].shape), dtype=numpy.float32)
    strict = data.draw(st.booleans())
    result = attempt(("load_state_dict",), model.load_state_dict, state, strict=strict)
    if not isinstance(result, Rejected):  # accepted: the loaded values must be the ones given
        for k, v in model.state_dict().items():
            if k in state and isinstance(state[k], (em.Tensor, numpy.ndarray)):
                given_value = state[k].numpy() if isinstance(state[k], em.Tensor) else state[k]
                numpy.testing.assert_array_equal(v.numpy(), numpy.asarray(given_value, dtype=v.dtype))
