"""tril, triu, diag, mm, bmm and linspace: PyTorch parity and errors."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")

from op_parity import compare  # noqa: E402  (needs torch)

R = numpy.random.default_rng(5)


@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("shape,k", [((3, 4), 0), ((4, 3), 1), ((4, 3), -2), ((2, 3, 3), -1), ((2, 1, 3, 5), 7),
                                     ((3, 3), -7)], ids=str)
def test_triangles_match_torch(name, shape, k):
    x = R.normal(size=shape)
    compare(lambda t: getattr(em, name)(t, k), lambda t: getattr(torch, name)(t, k), [x])
    compare(lambda t: getattr(t, name)(diagonal=k), lambda t: getattr(t, name)(diagonal=k), [x])


def test_triangles_keep_integer_dtype_and_zero_out_infinities():
    x = em.tensor([[1, 2], [3, 4]])
    assert x.tril().dtype == em.int64 and x.triu().tolist() == [[1, 2], [0, 4]]
    inf = em.tensor([[1.0, float("inf")], [float("-inf"), 2.0]])
    assert inf.tril().tolist() == [[1.0, 0.0], [float("-inf"), 2.0]]


@pytest.mark.parametrize("shape,k", [((3,), 0), ((3,), 2), ((3,), -1), ((3, 4), 0), ((3, 4), 2), ((4, 3), -3),
                                     ((3, 4), 5)], ids=str)
def test_diag_matches_torch(shape, k):
    x = R.normal(size=shape)
    compare(lambda t: em.diag(t, k), lambda t: torch.diag(t, k), [x])
    compare(lambda t: t.diag(k), lambda t: t.diag(k), [x])


def test_diag_is_twice_differentiable_both_ways():
    v = em.tensor(R.normal(size=(3,)), dtype=em.float64, requires_grad=True)
    assert em.autograd.gradgradcheck(lambda t: em.diag(t, 1) ** 2, [v])
    m = em.tensor(R.normal(size=(3, 4)), dtype=em.float64, requires_grad=True)
    assert em.autograd.gradgradcheck(lambda t: em.diag(t, -1) ** 2, [m])


def test_mm_bmm_match_torch():
    compare(em.mm, torch.mm, [R.normal(size=(3, 4)), R.normal(size=(4, 2))])
    compare(lambda a, b: a.mm(b), lambda a, b: a.mm(b), [R.normal(size=(1, 4)), R.normal(size=(4, 5))])
    compare(em.bmm, torch.bmm, [R.normal(size=(2, 3, 4)), R.normal(size=(2, 4, 5))])
    compare(lambda a, b: a.bmm(b), lambda a, b: a.bmm(b), [R.normal(size=(1, 2, 2)), R.normal(size=(1, 2, 3))])
    ints = em.mm(em.tensor([[1, 2]]), em.tensor([[3], [4]]))
    assert ints.dtype == em.int64 and ints.tolist() == [[11]]


def test_mm_bmm_graph_nodes_are_named_after_the_op():
    a = em.ones(2, 2, requires_grad=True)
    assert type(em.mm(a, a).grad_fn).__name__ == "Mm"
    assert type(em.bmm(a[None], a[None]).grad_fn).__name__ == "Bmm"


def test_mm_bmm_refuse_what_torch_refuses():
    with pytest.raises(ShapeError, match=r"mm: expected two 2-d tensors, got shapes \(3,\) and \(3, 2\)"):
        em.mm(em.ones(3), em.ones(3, 2))
    with pytest.raises(ShapeError, match=r"mm: expected two 2-d tensors, got shapes \(2, 3, 4\) and \(4, 2\)"):
        em.mm(em.ones(2, 3, 4), em.ones(4, 2))
    with pytest.raises(ShapeError, match=r"mm: inner dimensions differ, got shapes \(3, 4\) and \(3, 2\)"):
        em.mm(em.ones(3, 4), em.ones(3, 2))
    with pytest.raises(ShapeError, match=r"bmm: expected equal batch sizes, got shapes \(2, 3, 4\) and \(1, 4, 2\)"):
        em.bmm(em.ones(2, 3, 4), em.ones(1, 4, 2))
    with pytest.raises(ShapeError, match=r"bmm: expected two 3-d tensors"):
        em.bmm(em.ones(3, 4), em.ones(4, 2))
    with pytest.raises(DTypeError, match=r"mm: expected operands of one dtype, got float32 \(2, 2\) and int64"):
        em.mm(em.ones(2, 2), em.tensor([[1, 2], [3, 4]]))
    with pytest.raises(TypeError, match=r"mm: expected two Tensors"):
        em.mm(em.ones(2, 2), [[1.0, 0.0], [0.0, 1.0]])


def test_triangle_and_diag_bad_input_name_the_op_and_shapes():
    with pytest.raises(ShapeError, match=r"tril: expected a tensor of at least 2 dims, got shape \(3,\)"):
        em.tril(em.ones(3))
    with pytest.raises(TypeError, match=r"triu: expected an int diagonal, got 1.5"):
        em.triu(em.ones(3, 3), 1.5)
    with pytest.raises(ShapeError, match=r"diag: expected a 1-d or 2-d tensor, got shape \(2, 2, 2\)"):
        em.diag(em.ones(2, 2, 2))


@pytest.mark.parametrize("start,end,steps", [(0, 1, 5), (-3.5, 2.25, 7), (2, -2, 4), (1, 1, 1), (0, 1, 0), (5, 6, 2)])
def test_linspace_matches_torch(start, end, steps):
    ours = em.linspace(start, end, steps)
    theirs = torch.linspace(start, end, steps)
    assert ours.dtype == em.float32 and tuple(ours.shape) == tuple(theirs.shape)
    numpy.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)
    exact = em.linspace(start, end, steps, dtype=em.float64)
    numpy.testing.assert_allclose(exact.numpy(), torch.linspace(start, end, steps, dtype=torch.float64).numpy(),
                                  rtol=1e-14, atol=1e-14)


def test_linspace_options():
    assert em.linspace(0, 10, 5, dtype=em.int64).tolist() == torch.linspace(0, 10, 5, dtype=torch.int64).tolist()
    t = em.linspace(em.tensor(0.0), em.tensor(1.0), 3, requires_grad=True)
    assert t.requires_grad and t.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"linspace: expected a non-negative integer number of steps, got -1"):
        em.linspace(0, 1, -1)
    with pytest.raises(TypeError, match=r"linspace: expected a number for end, got str"):
        em.linspace(0, "1", 3)
    with pytest.raises(ValueError, match=r"linspace: expected a 0-d tensor for start, got shape \(2,\)"):
        em.linspace(em.ones(2), 1, 3)
