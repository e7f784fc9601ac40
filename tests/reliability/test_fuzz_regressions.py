"""Regression tests for the bugs the API fuzzers (test_fuzz_api.py, test_fuzz_nn.py) found.

Each case once raised an exception of the wrong type (IndexError, KeyError,
math's domain error) or a NumPy message that did not name the op.
"""

from __future__ import annotations

import warnings

import numpy
import pytest

import ember as em
from ember.autograd.registry import OPS
from ember.errors import ShapeError, StateDictKeyError


def test_cat_of_0d_tensors_is_a_shape_error():
    with pytest.raises(ShapeError, match="cat: expected tensors of at least 1 dimension"):
        em.cat([em.tensor(1.0), em.tensor(2.0)])


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_losses_with_zero_classes_name_the_op(op):
    logits = em.zeros(2, 0, requires_grad=True)
    with pytest.raises(ValueError, match=f"{op}: expected at least one class"):
        OPS[op].fn(logits, em.tensor(numpy.zeros(2, dtype=numpy.int64)))


def test_getitem_zero_step_and_ragged_lists():
    x = em.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match=r"getitem: .*slice step cannot be zero"):
        x[::0]
    with pytest.raises(TypeError, match="getitem: expected a rectangular list"):
        x[[[0], [1, 2]]]


def test_index_add_validates_shape_and_index():
    g = em.ones(3)
    index_add = OPS["index_add"].fn
    with pytest.raises(ShapeError, match="index_add: expected a shape of non-negative ints"):
        index_add(g, (-1, 3), 0)
    with pytest.raises(ShapeError, match=r"index_add: cannot add a gradient of shape \(3,\) at index 5"):
        index_add(g, (2, 3), 5)
    with pytest.raises(TypeError, match="index_add: expected integer or bool indices"):
        index_add(g, (2, 3), [0.5])
    numpy.testing.assert_array_equal(index_add(g, (2, 3), 1).numpy(), [[0, 0, 0], [1, 1, 1]])


def test_pow_scalar_base_gradient_at_nonpositive_base_is_nan_not_a_crash():
    b = em.tensor([2.0, 3.0], dtype=em.float64, requires_grad=True)
    for base, expected in [(0.0, 0.0), (-2.0, numpy.nan)]:
        b.grad = None
        with warnings.catch_warnings(), numpy.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            (base ** b).sum().backward()  # d/db base**b = base**b * log(base)
        got = b.grad.numpy()
        if numpy.isnan(expected):
            assert numpy.isnan(got).all()
        else:  # 0**b is constant 0 for b >= 0: gradient 0, as PyTorch (no math domain error either)
            numpy.testing.assert_array_equal(got, expected)


def test_integer_to_negative_power_names_pow():
    with pytest.raises(ValueError, match="pow: Integers to negative integer powers"):
        em.tensor([2, 3]) ** -1
    with pytest.raises(ValueError, match="pow: "):
        em.tensor([2, 3]) ** em.tensor([-1, 2])


def test_float_axis_is_a_type_error_naming_the_op():
    with pytest.raises(TypeError, match="sum: expected an int or a sequence of ints as axis, got 0.5"):
        em.tensor([1.0, 2.0]).sum(axis=0.5)


@pytest.mark.parametrize("name", ["transpose", "swapaxes"])
def test_two_axis_transpose_of_a_0d_tensor(name):
    x = em.tensor(1.0)
    assert getattr(x, name)(0, -1) is x  # PyTorch accepts dims 0 and -1 of a 0-d tensor: nothing to swap
    with pytest.raises(ShapeError, match=f"{name}: axis 1 is out of range for a tensor of 0 dimensions"):
        getattr(x, name)(0, 1)


@pytest.mark.parametrize("x_shape, w_shape", [((2, 0), (0, 0)), ((0,), (3, 0)), ((2, 2, 0), (3, 0))])
def test_linear_backward_with_zero_features(x_shape, w_shape):
    x = em.zeros(*x_shape, requires_grad=True)
    w = em.zeros(*w_shape, requires_grad=True)
    b = em.zeros(w_shape[0], requires_grad=True)
    em.nn.functional.linear(x, w, b).sum().backward()
    assert x.grad.shape == x_shape and w.grad.shape == w_shape and b.grad.shape == (w_shape[0],)
    rows = int(numpy.prod(x_shape[:-1]))  # gb = gy summed over the rows: each output had gradient 1
    assert w.grad.numpy().size == 0 and (b.grad.numpy() == rows).all()


def test_load_state_dict_errors_are_runtime_errors_and_load_nothing_on_failure():
    model = em.nn.Sequential(em.nn.Linear(3, 4), em.nn.BatchNorm1d(4))
    with pytest.raises(StateDictKeyError, match=r"missing keys \['0.bias'") as info:
        model.load_state_dict({k: v for k, v in model.state_dict().items() if k != "0.bias"})
    assert isinstance(info.value, KeyError) and isinstance(info.value, RuntimeError)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = {k: em.ones(*v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}
    state["1.num_batches_tracked"] = "text"
    with pytest.raises(TypeError, match="load_state_dict for Sequential: cannot use the str given for '1.num_b"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():  # the valid entries before the bad one were not copied
        numpy.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_argmax_of_a_whole_tensor_is_a_0d_tensor_and_several_axes_are_refused():
    t = em.tensor([[1.0, 5.0], [3.0, 0.0]])
    assert t.argmax().item() == 1 and t.argmin().numpy().shape == ()
    with pytest.raises(ValueError, match=r"argmax: expected a single axis, got \(0, 1\)"):
        t.argmax(axis=(0, 1))


# Found by fuzzing the in-place methods: NumPy's casting/broadcast errors used to leak without the name.
INPLACE_BUGS = {
    "add_ float into int": ("add_", lambda: em.tensor([1, 2]).add_(0.5)),
    "mul_ not broadcastable": ("mul_", lambda: em.ones(3).mul_(em.ones(4))),
    "copy_ wrong shape": ("copy_", lambda: em.ones(3).copy_(em.ones(2))),
    "copy_ inf into int": ("copy_", lambda: em.tensor([1, 2]).copy_(float("inf"))),
    "fill_ with a string": ("fill_", lambda: em.ones(2).fill_("x")),
    "zero_ on a tensor saved for backward": ("zero_", lambda: _saved_then_zeroed()),
}


def _saved_then_zeroed():
    x = em.ones(2, requires_grad=True)
    y = (x * 1.0).tanh()
    y.zero_()


@pytest.mark.parametrize("case", sorted(INPLACE_BUGS))
def test_inplace_method_errors_name_the_method(case):
    name, call = INPLACE_BUGS[case]
    try:
        call()
    except (ValueError, TypeError, RuntimeError) as e:
        assert name in str(e), e
    else:
        pytest.fail(f"{case}: no error")


@pytest.mark.parametrize("call, op", [
    (lambda: em.tensor([[1.0], [1.0, 2.0]]), "tensor"),
    (lambda: em.eye(-2), "eye"),
    (lambda: em.eye(2, 2.5), "eye"),
    (lambda: em.full((2,), "x"), "full"),
    (lambda: em.full((2,), 1e400, dtype=em.int64), "full"),
    (lambda: em.full((2,), float("nan"), dtype=em.int32), "full"),
])
def test_creation_errors_name_the_function(call, op):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert str(info.value).startswith(f"{op}:"), info.value
