"""Tensor factories, dtype inference, conversions, metadata and devices."""

from __future__ import annotations

import numpy
import pytest

import ember as em


# ------------------------------------------------------------------- factories
def test_tensor_dtype_inference():
    assert em.tensor(1.5).dtype == em.float32  # Python floats: the default float dtype
    assert em.tensor([1.0, 2.0]).dtype == em.float32
    assert em.tensor([1, 2]).dtype == em.int64  # Python ints: int64
    assert em.tensor([1, 2.5]).dtype == em.float32  # mixed: floating
    assert em.tensor([True, False]).dtype == em.bool_
    assert em.tensor(numpy.ones(2)).dtype == em.float64  # arrays keep their dtype
    assert em.tensor(numpy.ones(2, dtype=numpy.float16)).dtype == em.float16
    assert em.tensor(numpy.arange(3, dtype=numpy.int32)).dtype == em.int32
    assert em.tensor([1, 2], dtype=em.float64).dtype == em.float64


def test_default_dtype_can_be_changed_and_restored():
    assert em.get_default_dtype() == em.float32
    em.set_default_dtype(em.float64)
    try:
        assert em.tensor([0.5]).dtype == em.float64
        assert em.zeros(2).dtype == em.float64
        assert em.tensor([1]).dtype == em.int64
    finally:
        em.set_default_dtype(em.float32)
    assert em.tensor([0.5]).dtype == em.float32
    with pytest.raises(TypeError, match="floating"):
        em.set_default_dtype(em.int64)


def test_tensor_copies_its_data():
    a = numpy.array([1.0, 2.0])
    t = em.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]


def test_from_numpy_shares_memory():
    a = numpy.zeros((2, 2))
    t = em.from_numpy(a)
    assert t.dtype == em.float64
    a[0, 1] = 7.0
    assert t.numpy()[0, 1] == 7.0
    assert numpy.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError, match="from_numpy"):
        em.from_numpy([1.0, 2.0])


@pytest.mark.parametrize("factory,value", [(em.zeros, 0.0), (em.ones, 1.0)])
def test_zeros_ones(factory, value):
    for t in (factory(2, 3), factory((2, 3))):
        assert t.shape == (2, 3) and t.dtype == em.float32 and not t.requires_grad
        numpy.testing.assert_array_equal(t.numpy(), numpy.full((2, 3), value, dtype=numpy.float32))
    t = factory(4, dtype=em.float64, requires_grad=True)
    assert t.dtype == em.float64 and t.requires_grad and t.is_leaf
    assert factory().shape == ()


def test_full_empty_and_likes():
    assert em.full((2,), 7).dtype == em.int64
    numpy.testing.assert_array_equal(em.full((2, 2), 2.5).numpy(), numpy.full((2, 2), 2.5, dtype=numpy.float32))
    assert em.full(3, 1.0).shape == (3,)
    e = em.empty(3, 4, dtype=em.float64)
    assert e.shape == (3, 4) and e.dtype == em.float64
    base = em.ones(2, 5, dtype=em.float64)
    z, o = em.zeros_like(base), em.ones_like(base)
    assert z.shape == o.shape == (2, 5) and z.dtype == o.dtype == em.float64
    assert z.numpy().sum() == 0.0 and o.numpy().sum() == 10.0
    assert em.zeros_like(base, dtype=em.float32).dtype == em.float32
    assert em.ones_like(base, requires_grad=True).requires_grad


def test_arange():
    assert em.arange(5).tolist() == [0, 1, 2, 3, 4] and em.arange(5).dtype == em.int64
    assert em.arange(2, 8, 3).tolist() == [2, 5]
    t = em.arange(0, 1, 0.25)
    assert t.dtype == em.float32 and t.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert em.arange(3, dtype=em.float64).dtype == em.float64
    with pytest.raises(ValueError, match="step"):
        em.arange(0, 3, 0)


def test_eye():
    numpy.testing.assert_array_equal(em.eye(3).numpy(), numpy.eye(3, dtype=numpy.float32))
    numpy.testing.assert_array_equal(em.eye(2, 3).numpy(), numpy.eye(2, 3, dtype=numpy.float32))
    assert em.eye(2, dtype=em.float64).dtype == em.float64


def test_random_factories_shapes_dtypes_and_ranges():
    r = em.rand(1000)
    assert r.dtype == em.float32 and r.shape == (1000,)
    assert 0.0 <= r.numpy().min() and r.numpy().max() < 1.0
    n = em.randn(200, 50, dtype=em.float64)
    assert n.dtype == em.float64 and abs(float(n.numpy().mean())) < 0.05
    assert 0.9 < float(n.numpy().std()) < 1.1
    i = em.randint(3, 7, (500,))
    assert i.dtype == em.int64 and set(i.tolist()) == {3, 4, 5, 6}
    assert em.randint(10, size=(2, 2)).shape == (2, 2)
    assert em.randn(3, requires_grad=True).requires_grad


def test_manual_seed_determinism():
    em.manual_seed(123)
    a = (em.rand(4).numpy(), em.randn(2, 3).numpy(), em.randint(0, 100, (5,)).numpy())
    em.manual_seed(123)
    b = (em.rand(4).numpy(), em.randn(2, 3).numpy(), em.randint(0, 100, (5,)).numpy())
    for x, y in zip(a, b):
        numpy.testing.assert_array_equal(x, y)
    em.manual_seed(124)
    assert not numpy.array_equal(em.rand(4).numpy(), a[0])


# ----------------------------------------------------------------- conversions
def test_numpy_item_tolist():
    t = em.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=em.float64)
    assert isinstance(t.numpy(), numpy.ndarray) and t.numpy().dtype == numpy.float64
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert em.tensor(3.5).item() == 3.5 and isinstance(em.tensor(3.5).item(), float)
    assert em.tensor([7]).item() == 7 and isinstance(em.tensor([7]).item(), int)
    assert em.tensor(2.0).tolist() == 2.0
    assert numpy.asarray(t).shape == (2, 2)


@pytest.mark.parametrize(
    "convert,dtype",
    [
        (lambda t: t.float(), em.float32),
        (lambda t: t.half(), em.float16),
        (lambda t: t.double(), em.float64),
        (lambda t: t.to(em.float64), em.float64),
        (lambda t: t.to(dtype=em.float16), em.float16),
        (lambda t: t.to("float64"), em.float64),
        (lambda t: t.to("cpu", em.float64), em.float64),
        (lambda t: t.long(), em.int64),
    ],
)
def test_dtype_conversions(convert, dtype):
    t = em.tensor([1.25, -2.5])
    out = convert(t)
    assert out.dtype == dtype
    numpy.testing.assert_array_equal(out.numpy(), numpy.array([1.25, -2.5]).astype(dtype))


def test_conversion_to_same_dtype_is_identity_and_cast_is_differentiable():
    t = em.tensor([1.0, 2.0], requires_grad=True)
    assert t.float() is t and t.to("cpu") is t
    d = t.double()
    assert d.grad_fn is not None
    (d * d).sum().backward()
    assert t.grad.dtype == em.float32  # the gradient is cast back to the input dtype
    numpy.testing.assert_array_equal(t.grad.numpy(), [2.0, 4.0])


def test_detach_and_clone():
    t = em.tensor([1.0, 2.0], requires_grad=True)
    d = t.detach()
    assert not d.requires_grad and d.grad_fn is None and numpy.shares_memory(d.numpy(), t.numpy())
    c = t.clone()
    assert c.grad_fn is not None and not numpy.shares_memory(c.numpy(), t.numpy())


# -------------------------------------------------------------------- metadata
def test_repr_contains_values_dtype_and_grad_fn():
    t = em.tensor([1.5, -2.0])
    r = repr(t)
    assert r.startswith("tensor(") and "1.5" in r and "-2." in r and "dtype=float32" in r
    leaf = em.tensor([3.0], dtype=em.float64, requires_grad=True)
    assert "requires_grad=True" in repr(leaf) and "float64" in repr(leaf)
    y = leaf * 2.0
    assert "grad_fn=<MulBackward>" in repr(y) and "6." in repr(y)
    assert "grad_fn=<ExpBackward>" in repr(leaf.exp())
    assert "dtype=int64" in repr(em.arange(3))


def test_size_shape_len_numel_ndim():
    t = em.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.size() == (2, 3, 4) and t.size(0) == 2 and t.size(-1) == 4
    assert t.size == t.shape
    assert len(t) == 2 and t.numel() == 24 and t.ndim == 3 and t.dim() == 3
    assert em.zeros(()).numel() == 1 and em.zeros(()).shape == ()
    assert len(em.zeros(5)) == 5


def test_iteration_over_first_axis():
    t = em.tensor([[1.0, 2.0], [3.0, 4.0]])
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]


def test_requires_grad_flags():
    t = em.ones(2)
    assert not t.requires_grad and t.is_leaf and t.grad is None and t.grad_fn is None
    assert t.requires_grad_() is t and t.requires_grad
    y = t * 2.0
    assert not y.is_leaf and y.requires_grad
    assert t.is_floating_point and not em.arange(2).is_floating_point


# --------------------------------------------------------------------- devices
def test_cpu_device():
    t = em.ones(2)
    assert t.device == em.device("cpu") and t.device == "cpu" and str(t.device) == "cpu"
    assert t.cpu() is t


def test_device_values():
    d = em.device("cuda:0")
    assert d.type == "cuda" and d.index == 0 and str(d) == "cuda:0"
    assert em.device("cuda") == d and d == "cuda:0"
    assert em.device("cuda:1") != d and repr(em.device("cuda:1")) == "device(type='cuda', index=1)"
    assert len({em.device("cuda"), em.device("cuda:0")}) == 1
    assert em.device("cpu").index is None
    with pytest.raises(ValueError, match="index"):
        em.device("cuda:x")


@pytest.mark.skipif(em.cuda.is_available(), reason="checks the error shown without CUDA")
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: em.tensor([1.0], device="cuda"), id="tensor"),
        pytest.param(lambda: em.zeros(2, device="cuda:0"), id="zeros"),
        pytest.param(lambda: em.randn(2, device="cuda"), id="randn"),
        pytest.param(lambda: em.ones(2).cuda(), id="cuda()"),
    ],
)
def test_cuda_without_cupy_raises_naming_the_fix(make):
    assert em.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*pip install ember\[gpu\]"):
        make()
