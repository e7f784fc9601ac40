"""``ember.autograd.detect_anomaly``: the first op producing NaN/Inf is named, with its creation line."""

from __future__ import annotations

import inspect
import warnings

import numpy
import pytest

import ember as em
from ember.autograd import (
    Function,
    detect_anomaly,
    is_anomaly_enabled,
    set_detect_anomaly,
)
from ember.errors import AnomalyError


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """The ops under test divide by zero on purpose; NumPy's RuntimeWarnings are noise here."""
    with warnings.catch_warnings(), numpy.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
    assert not is_anomaly_enabled(), "a test left anomaly mode on"


def this_line() -> int:
    return inspect.currentframe().f_back.f_lineno


def test_off_by_default_and_nodes_record_nothing():
    assert not is_anomaly_enabled()
    x = em.tensor([0.0, 1.0], requires_grad=True)
    y = x.log()  # -inf, no error when off
    assert numpy.isinf(y.numpy()[0])
    assert not hasattr(y.grad_fn, "_anomaly_frames")  # no stack walk when off


def test_forward_nan_names_op_output_shapes_and_call_line():
    x = em.tensor([[1.0, -1.0, 2.0]], requires_grad=True)
    with detect_anomaly():
        h = x * 2.0
        line = this_line() + 2
        with pytest.raises(AnomalyError) as info:
            h.log()
    e = info.value
    assert isinstance(e, RuntimeError)
    assert (e.op, e.phase, e.index) == ("Log", "forward", 0)
    msg = str(e)
    assert msg.startswith("Log.forward:") and "1 NaN" in msg and "(1, 3)" in msg
    assert f"{__file__}:{line} in test_forward_nan" in msg and "h.log()" in msg
    assert e.frames[0][:2] == (__file__, line)


def test_backward_inf_names_the_op_and_where_it_was_created():
    x = em.tensor([4.0, 0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        y = x.sqrt(); line = this_line()  # the op and its line number together; sqrt'(0) = inf
        z = (y * 3.0).sum()
        with pytest.raises(AnomalyError) as info:
            z.backward()
    e = info.value
    assert (e.op, e.phase, e.index) == ("Sqrt", "backward", 0)
    assert "Sqrt.backward:" in str(e) and "1 Inf" in str(e) and f":{line} in test_backward_inf" in str(e)


def test_the_first_producer_is_blamed_not_the_ops_downstream():
    # NaN appears in Div's forward (0/0); the ops after it see a NaN input and stay quiet.
    a = em.tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        ((a / a).exp() + 1.0).sum()
    assert info.value.op == "Div" and info.value.phase == "forward"


def test_nan_fed_in_by_the_user_is_not_blamed_on_forward_ops():
    x = em.tensor([numpy.nan, 1.0], requires_grad=True)
    with detect_anomaly():
        y = (x * 2.0 + 1.0).tanh().sum()  # no error: no op produced the NaN
        y.backward()  # HyperbolicTangent's gradient is NaN, but from its saved NaN output: not blamed either
    assert numpy.isnan(y.item())
    numpy.testing.assert_array_equal(numpy.isnan(x.grad.numpy()), [True, False])


def test_inside_a_model_the_layer_op_is_named():
    lin = em.nn.Linear(3, 2)
    with em.no_grad():
        lin.weight.data[...] = 1e30
    x = em.full((4, 3), 1e30)  # finite float32 inputs whose products overflow to Inf
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        lin(x)
    assert info.value.phase == "forward" and info.value.op  # the op class behind F.linear
    assert __file__ in str(info.value)


def test_graph_built_outside_anomaly_mode_reports_unknown_location():
    x = em.tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt().sum()
    with detect_anomaly(), pytest.raises(AnomalyError, match="unknown location"):
        y.backward()


def test_double_backward_gradients_are_checked_too():
    x = em.tensor([0.0, 1.0], dtype=em.float64, requires_grad=True)
    with detect_anomaly():
        y = (x * x * x).sum()
        (g,) = em.autograd.grad(y, x, create_graph=True)  # 3 x^2: finite
        (h,) = em.autograd.grad(g.sum(), x)  # 6 x: finite, no false alarm
        numpy.testing.assert_allclose(h.numpy(), [0.0, 6.0])
        s = x.sqrt()  # finite forward; its gradient 0.5 / sqrt(x) is recorded as ops (create_graph)
        with pytest.raises(AnomalyError) as info:
            em.autograd.grad(s.sum(), x, create_graph=True)
    # Sqrt's backward ran as recorded ops; its division by sqrt(0) is the first producer
    assert (info.value.op, info.value.phase) == ("Div", "forward")


class _BrokenBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, gy):
        raise ValueError("_BrokenBackward.backward: deliberate failure")


def test_check_nan_false_skips_checks_but_annotates_backward_errors():
    x = em.tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly(check_nan=False):
        assert numpy.isinf(x.log().numpy()[0])  # no NaN check
        y = _BrokenBackward.apply(x).sum(); line = this_line()  # the op and its line number together
        with pytest.raises(ValueError, match="deliberate") as info:
            y.backward()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "_BrokenBackward.backward" in notes and f":{line} in test_check_nan_false" in notes


def test_set_detect_anomaly_call_and_context_restore_state():
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)
    with pytest.raises(ZeroDivisionError), detect_anomaly():
        _ = 1 / 0
    assert not is_anomaly_enabled()  # restored on an exception too


def test_decorator_form_and_integer_results_pass():
    @detect_anomaly()
    def run():
        assert is_anomaly_enabled()
        t = em.tensor([1, 2, 3])
        return (t > 1).numpy(), (em.tensor([1.0, 2.0]) * 2.0).numpy()

    mask, doubled = run()
    assert mask.tolist() == [False, True, True] and doubled.tolist() == [2.0, 4.0]
    assert not is_anomaly_enabled()
