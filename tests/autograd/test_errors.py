"""Error messages: the right exception type, naming the op and the offending shapes/dtypes/values.

Each case states the type and a regex that must find the op name and the
actual shapes (or dtype, axis, value) in the message, so a bare NumPy error
or a message without context fails the test.
"""

from __future__ import annotations

import re

import numpy
import pytest

import ember as em
from ember.errors import DeviceMismatchError, DTypeError, GraphError, ShapeError


def ones(*shape, dtype=em.float32, requires_grad=False):
    return em.ones(*shape, dtype=dtype, requires_grad=requires_grad)


CASES = [
    # (id, thunk, exception type, regex that must match the message)
    ("matmul inner", lambda: ones(2, 3) @ ones(4, 5), ShapeError,
     r"^matmul: .*\(2, 3\) and \(4, 5\)"),
    ("matmul vector", lambda: ones(3) @ ones(4), ShapeError, r"^matmul: .*\(3,\) and \(4,\)"),
    ("matmul batch", lambda: ones(2, 3, 4) @ ones(3, 4, 5), ShapeError,
     r"^matmul: batch .*\(2, 3, 4\) and \(3, 4, 5\)"),
    ("matmul 0-d", lambda: ones() @ ones(3), ShapeError, r"^matmul: .*\(\) and \(3,\)"),
    ("add broadcast", lambda: ones(2, 3) + ones(4), ShapeError, r"^add: .*broadcast.*\(2, 3\) and \(4,\)"),
    ("mul broadcast", lambda: ones(2, 3) * ones(3, 2), ShapeError, r"^mul: .*\(2, 3\) and \(3, 2\)"),
    ("sub broadcast", lambda: ones(5) - ones(2, 4), ShapeError, r"^sub: .*\(5,\) and \(2, 4\)"),
    ("div with ndarray", lambda: ones(2, 3) / numpy.ones(4, dtype=numpy.float32), ShapeError,
     r"^div: .*\(2, 3\) and \(4,\)"),
    ("where broadcast", lambda: em.where(ones(2, 3) > 0, ones(4), ones(2, 3)), ShapeError,
     r"^where: .*\(2, 3\) and \(4,\) and \(2, 3\)"),
    ("compare broadcast", lambda: ones(2, 3) < ones(2), ShapeError, r"^lt: .*\(2, 3\) and \(2,\)"),
    ("sum axis 5", lambda: ones(2, 3).sum(axis=5), ShapeError, r"^sum: axis 5 .*2 dimensions"),
    ("mean axis -3", lambda: ones(2, 3).mean(axis=-3), ShapeError, r"^mean: axis -3 .*2 dimensions"),
    ("max axis", lambda: ones(2, 3).max(axis=2), ShapeError, r"^max: axis 2 .*2 dimensions"),
    ("var axis", lambda: ones(2, 3).var(axis=(0, 3)), ShapeError, r"^var: axis 3 .*2 dimensions"),
    ("argmax axis", lambda: ones(2, 3).argmax(axis=-4), ShapeError, r"^argmax: axis -4 .*2 dimensions"),
    ("repeated axis", lambda: ones(2, 3).sum(axis=(1, -1)), ShapeError, r"^sum: repeated axis .*\(1, -1\)"),
    ("unsqueeze axis", lambda: ones(2).unsqueeze(3), ShapeError, r"^unsqueeze: axis 3"),
    ("reshape size", lambda: ones(2, 3).reshape(4, 2), ShapeError,
     r"^reshape: .*\(2, 3\) \(6 elements\) into \(4, 2\)"),
    ("reshape -1", lambda: ones(2, 3).reshape(-1, 4), ShapeError, r"^reshape: .*\(2, 3\).*\(-1, 4\)"),
    ("reshape two -1", lambda: ones(2, 3).reshape(-1, -1), ShapeError, r"^reshape: .*\(-1, -1\)"),
    ("permute perm", lambda: ones(2, 3, 4).permute(0, 1, 1), ShapeError, r"^permute: .*\(0, 1, 1\)"),
    ("transpose axis", lambda: ones(2, 3).transpose(0, 2), ShapeError, r"^transpose: axis 2 .*2 dimensions"),
    ("permute count", lambda: ones(2, 3, 4).permute(0, 1), ShapeError, r"^permute: .*\(2, 3, 4\).*\(0, 1\)"),
    ("broadcast_to", lambda: ones(3, 2).broadcast_to(3, 4), ShapeError, r"^broadcast_to: .*\(3, 2\) to \(3, 4\)"),
    ("squeeze", lambda: ones(3, 2).squeeze(2), ShapeError, r"^squeeze: axis 2 is out of range.*2 dimensions"),
    ("cat shapes", lambda: em.cat([ones(2, 3), ones(2, 4)], axis=0), ShapeError,
     r"^cat: .*\(2, 3\) except on axis 0, got \(2, 4\) at position 1"),
    ("cat ranks", lambda: em.cat([ones(2, 3), ones(2, 3, 1)], axis=1), ShapeError, r"^cat: .*\(2, 3, 1\)"),
    ("cat dtypes", lambda: em.cat([ones(2, 3), ones(2, 3, dtype=em.float64)]), DTypeError,
     r"^cat: .*float32.*float64 at position 1"),
    ("cat empty", lambda: em.cat([]), ValueError, r"^cat: .*non-empty"),
    ("stack shapes", lambda: em.stack([ones(2, 3), ones(3, 2)]), ShapeError,
     r"^stack: .*\(2, 3\), got \(3, 2\) at position 1"),
    ("float32 + float64", lambda: ones(2) + ones(2, dtype=em.float64), DTypeError,
     r"^add: .*float32 \(2,\) and float64 \(2,\)"),
    ("float64 * float32", lambda: ones(2, 1, dtype=em.float64) * ones(3), DTypeError,
     r"^mul: .*float64 \(2, 1\) and float32 \(3,\)"),
    ("matmul dtypes", lambda: ones(2, 2) @ ones(2, 2, dtype=em.float64), DTypeError,
     r"^matmul: .*float32 \(2, 2\) and float64 \(2, 2\)"),
    ("where dtypes", lambda: em.where(ones(2) > 0, ones(2), ones(2, dtype=em.float64)), DTypeError,
     r"^where: .*float32.*float64"),
    ("where float cond", lambda: em.where(ones(3), ones(3), em.zeros(3)), DTypeError,
     r"^where: expected a bool condition, got dtype float32"),
    ("mean of int", lambda: em.arange(3).mean(), DTypeError, r"^mean: .*floating.*int64"),
    ("neg of bool", lambda: -(em.arange(3) > 0), DTypeError, r"^neg: .*numeric.*bool"),
    ("complex scalar", lambda: ones(2) + 1j, DTypeError, r"^add: unsupported scalar type complex"),
    ("string operand", lambda: ones(2) * "a", TypeError, r"^mul: expected a Tensor.*str"),
    ("getitem row", lambda: ones(2, 3)[5], ShapeError, r"^getitem: index 5 .*\(2, 3\)"),
    ("getitem column", lambda: ones(2, 3)[:, 7], ShapeError, r"^getitem: .*7.*\(2, 3\)"),
    ("getitem array", lambda: ones(2, 3)[numpy.array([0, 4])], ShapeError, r"^getitem: .*4.*\(2, 3\)"),
    ("getitem too many", lambda: ones(2, 3)[0, 0, 0], ShapeError, r"^getitem: .*\(2, 3\)"),
    ("float index", lambda: ones(2, 3)[1.0], TypeError, r"^getitem: expected integer indices, got float 1\.0"),
    ("float index tensor", lambda: ones(2, 3)[em.tensor([0.0])], DTypeError, r"^getitem: .*float32"),
    ("clip no bound", lambda: ones(3).clip(), ValueError, r"^clip: expected at least one of lo and hi"),
    ("clip no bounds", lambda: ones(3).clip(), ValueError, r"^clip: .*lo and hi"),
    ("max of empty", lambda: ones(0).max(), ValueError, r"^max: .*non-empty.*\(0,\)"),
    ("flatten order", lambda: ones(2, 3).flatten(1, 0), ShapeError, r"^flatten: start axis 1 is after end axis 0"),
    ("backward non-scalar", lambda: (ones(3, requires_grad=True) * 2).backward(), GraphError,
     r"^backward: .*one-element.*\(3,\)"),
    ("backward no grad", lambda: ones(3).sum().backward(), GraphError, r"^backward: .*\(\) does not require grad"),
    ("backward bad grad", lambda: (ones(3, requires_grad=True) * 2).backward(ones(2)), GraphError,
     r"^backward: expected grad of shape \(3,\), got \(2,\)"),
    ("int requires grad", lambda: em.tensor([1, 2], requires_grad=True), DTypeError, r"^requires_grad_: .*int64"),
    ("item of many", lambda: ones(3).item(), ValueError, r"^item: .*one element.*\(3,\)"),
    ("bool of many", lambda: bool(ones(3)), ValueError, r"bool\(Tensor\).*\(3,\).*any\(\) or \.all\(\)"),
    ("len of 0-d", lambda: len(ones()), TypeError, r"len\(\) of a 0-d tensor"),
    ("negative size", lambda: em.zeros(-1), ValueError, r"^zeros: .*non-negative.*\(-1,\)"),
    ("randint range", lambda: em.randint(5, 2, (3,)), ValueError, r"^randint: .*low=5, high=2"),
    ("bad dtype", lambda: em.ones(2, dtype="complex64"), TypeError, r"^ones: unsupported dtype complex64"),
    ("bad device", lambda: em.device("tpu"), ValueError, r"^device: .*'tpu'"),
    ("tensor of str", lambda: em.tensor("abc"), TypeError, r"^tensor: .*str"),
]


@pytest.mark.parametrize("thunk,exc,pattern", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_error_type_and_message(thunk, exc, pattern):
    with pytest.raises(exc) as info:
        thunk()
    message = str(info.value)
    assert re.search(pattern, message), f"message {message!r} does not match {pattern!r}"


def test_axis_errors_are_also_index_errors():
    # Out-of-range axes subclass both ShapeError and IndexError, like NumPy's AxisError.
    with pytest.raises(IndexError):
        ones(2, 3).sum(axis=2)


def test_error_classes_subclass_the_builtin_a_user_would_catch():
    assert issubclass(ShapeError, ValueError)
    assert issubclass(DTypeError, TypeError)
    assert issubclass(DeviceMismatchError, RuntimeError)
    assert issubclass(GraphError, RuntimeError)


def test_freed_graph_error_names_the_op_and_retain_graph():
    x = ones(3, dtype=em.float64, requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(GraphError, match=r"^Exp\.backward: .*second time.*retain_graph=True"):
        y.backward()


def test_inplace_error_names_shape():
    x = ones(2, 5, requires_grad=True)
    with pytest.raises(GraphError, match=r"^mul_: in-place .*\(2, 5\)"):
        x.mul_(2.0)


def test_cuda_request_without_cupy_names_the_fix():
    if em.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    with pytest.raises(RuntimeError, match=re.escape("pip install ember[gpu]")):
        ones(2).to("cuda")


def test_errors_leave_no_partial_graph_behind():
    # A failing op must not record a node: the inputs can still be used normally.
    x = ones(2, 3, dtype=em.float64, requires_grad=True)
    with pytest.raises(ShapeError):
        x @ ones(2, 3, dtype=em.float64)
    (x * 2.0).sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), numpy.full((2, 3), 2.0))
