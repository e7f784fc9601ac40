"""gather, scatter, scatter_add, masked_fill (and their in-place forms): PyTorch parity and errors."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, GraphError, ShapeError

torch = pytest.importorskip("torch")

from op_parity import compare  # noqa: E402  (needs torch)

R = numpy.random.default_rng(7)
GATHER = [  # input shape, dim, index shape
    ((3, 4), 0, (2, 4)), ((3, 4), 1, (3, 6)), ((3, 4), -1, (2, 2)), ((2, 3, 4), -2, (2, 5, 4)),
    ((2, 3, 4), 0, (1, 2, 3)), ((5,), 0, (7,)),
]


def _index(in_shape, dim, shape):
    return R.integers(0, in_shape[dim], shape)


@pytest.mark.parametrize("in_shape,dim,idx_shape", GATHER, ids=str)
def test_gather_matches_torch(in_shape, dim, idx_shape):
    index = _index(in_shape, dim, idx_shape)
    x = R.normal(size=in_shape)
    compare(lambda t, i: em.gather(t, dim, i), lambda t, i: torch.gather(t, dim, i), [x, index])
    compare(lambda t, i: t.gather(dim, i), lambda t, i: t.gather(dim, i), [x, index])


@pytest.mark.parametrize("in_shape,dim,idx_shape", GATHER, ids=str)
def test_scatter_add_matches_torch(in_shape, dim, idx_shape):
    index = _index(in_shape, dim, idx_shape)
    x = R.normal(size=in_shape)
    src = R.normal(size=idx_shape)
    compare(lambda t, i, s: em.scatter_add(t, dim, i, s), lambda t, i, s: torch.scatter_add(t, dim, i, s),
            [x, index, src])
    larger = R.normal(size=tuple(s + 1 for s in idx_shape))  # src may be larger than the index
    compare(lambda t, i, s: t.scatter_add(dim, i, s), lambda t, i, s: t.scatter_add(dim, i, s),
            [x, index, larger], grad=False)  # torch 2.13's backward refuses a larger src


def test_scatter_add_gradient_of_a_larger_src_is_zero_outside_the_index():
    src = em.tensor(R.normal(size=(3, 5)), dtype=em.float64, requires_grad=True)
    out = em.scatter_add(em.zeros(3, 4, dtype=em.float64), 1, em.tensor([[0, 3], [1, 1], [2, 0]]), src)
    out.sum().backward()
    expected = numpy.zeros((3, 5))
    expected[:, :2] = 1.0
    numpy.testing.assert_array_equal(src.grad.numpy(), expected)


def _distinct_index(in_shape, dim, idx_shape):
    """An index without repeated targets (scatter's result with repeats is unspecified in torch)."""
    full_shape = list(idx_shape)
    full_shape[dim] = in_shape[dim]
    perms = numpy.argsort(R.uniform(size=full_shape), axis=dim)  # a permutation along dim at every position
    return numpy.take(perms, numpy.arange(idx_shape[dim]), axis=dim)


SCATTER = [((3, 4), 0, (2, 4)), ((3, 4), -1, (3, 2)), ((2, 3, 4), 1, (2, 2, 3)), ((5,), 0, (3,))]


@pytest.mark.parametrize("in_shape,dim,idx_shape", SCATTER, ids=str)
def test_scatter_matches_torch(in_shape, dim, idx_shape):
    index = _distinct_index(in_shape, dim % len(in_shape), idx_shape)
    x, src = R.normal(size=in_shape), R.normal(size=idx_shape)
    compare(lambda t, i, s: em.scatter(t, dim, i, s), lambda t, i, s: torch.scatter(t, dim, i, s), [x, index, src])
    compare(lambda t, i: t.scatter(dim, i, 2.5), lambda t, i: t.scatter(dim, i, 2.5), [x, index])


def test_gather_is_twice_differentiable():
    x = em.tensor(R.normal(size=(3, 4)), dtype=em.float64, requires_grad=True)
    index = em.tensor([[0, 2, 2, 1]])
    assert em.autograd.gradgradcheck(lambda t: em.gather(t, 0, index) ** 2, [x])


@pytest.mark.parametrize("mask_shape", [(3, 4), (4,), (3, 1)], ids=str)
def test_masked_fill_matches_torch(mask_shape):
    x = R.normal(size=(3, 4))
    mask = R.uniform(size=mask_shape) > 0.5
    compare(lambda t, m: em.masked_fill(t, m, -1.5), lambda t, m: t.masked_fill(m, -1.5), [x, mask])
    value = numpy.asarray(0.25)
    compare(lambda t, m, v: t.masked_fill(m, v), lambda t, m, v: t.masked_fill(m, v), [x, mask, value])


def test_masked_fill_broadcasts_the_input_like_torch():
    x, mask = R.normal(size=(3, 1)), R.uniform(size=(3, 4)) > 0.5
    compare(lambda t, m: em.masked_fill(t, m, 0.0), lambda t, m: t.masked_fill(m, 0.0), [x, mask])


def test_masked_fill_on_integers_casts_the_value_like_torch():
    x = em.tensor([1, 2, 3])
    out = x.masked_fill(x > 1, 7.9)
    assert out.dtype == em.int64
    assert out.tolist() == torch.tensor([1, 2, 3]).masked_fill(torch.tensor([False, True, True]), 7.9).tolist()


def test_in_place_forms_write_into_the_tensor():
    x = em.zeros(2, 3)
    assert x.scatter_(1, em.tensor([[2], [0]]), 5.0) is x
    assert x.tolist() == [[0, 0, 5], [5, 0, 0]]
    x.scatter_add_(0, em.tensor([[1, 1, 1]]), em.ones(1, 3))
    x.masked_fill_(x > 4, -1.0)
    assert x.tolist() == [[0, 0, -1], [-1, 1, 1]]
    version = x._version[0]
    x.masked_fill_(x < 0, 0.0)
    assert x._version[0] == version + 1


def test_in_place_forms_refuse_graph_cases():
    leaf = em.zeros(2, requires_grad=True)
    with pytest.raises(GraphError, match=r"masked_fill_: in-place modification"):
        leaf.masked_fill_(em.tensor([True, False]), 1.0)
    with pytest.raises(GraphError, match=r"scatter_: an argument requires grad"):
        em.zeros(3).scatter_(0, em.tensor([0]), em.ones(1, requires_grad=True))
    with pytest.raises(ValueError, match=r"masked_fill_: can't write"):
        em.zeros(3, 1).masked_fill_(em.tensor([True, False]), 1.0)


def test_gather_scatter_bad_input_name_the_op_and_shapes():
    x = em.ones(3, 4)
    with pytest.raises(ShapeError, match=r"gather: index 3 is out of bounds for dim 0 with size 3"):
        em.gather(x, 0, em.tensor([[3]]))
    with pytest.raises(ShapeError, match=r"gather: index -1 is out of bounds"):
        em.gather(x, 1, em.tensor([[-1]]))
    with pytest.raises(ShapeError, match=r"gather: expected an index with as many dims .*\(4,\).*\(3, 4\)"):
        em.gather(x, 0, em.tensor([0, 1, 2, 0]))
    with pytest.raises(ShapeError, match=r"gather: expected index.size\(d\) <= input.size\(d\).*\(2, 5\)"):
        em.gather(x, 0, em.zeros(2, 5, dtype=em.int64))
    with pytest.raises(DTypeError, match=r"gather: expected an integer index tensor, got dtype float32"):
        em.gather(x, 0, em.zeros(1, 1))
    with pytest.raises(IndexError, match=r"gather: axis 2 is out of range"):
        em.gather(x, 2, em.zeros(1, 1, dtype=em.int64))
    with pytest.raises(ShapeError, match=r"scatter: expected index.size\(d\) <= src.size\(d\).*\(1, 3\)"):
        em.scatter(x, 0, em.zeros(1, 4, dtype=em.int64), em.ones(1, 3))
    with pytest.raises(DTypeError, match=r"scatter_add: expected src of dtype float32, got float64"):
        em.scatter_add(x, 0, em.zeros(1, 4, dtype=em.int64), em.ones(1, 4, dtype=em.float64))
    with pytest.raises(TypeError, match=r"scatter_add: expected a Tensor as src"):
        em.scatter_add(x, 0, em.zeros(1, 4, dtype=em.int64), 1.0)


def test_masked_fill_bad_input_names_the_op():
    x = em.ones(3, 4)
    with pytest.raises(DTypeError, match=r"masked_fill: expected a bool mask tensor, got dtype int64"):
        x.masked_fill(em.tensor([1, 0, 1, 0]), 0.0)
    with pytest.raises(ShapeError, match=r"masked_fill: the mask of shape \(3,\) does not broadcast .*\(3, 4\)"):
        x.masked_fill(em.tensor([True, False, True]), 0.0)
    with pytest.raises(ShapeError, match=r"masked_fill: expected a 0-d value tensor, got shape \(2,\)"):
        x.masked_fill(x > 0, em.ones(2))


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter:UserWarning")
def test_scatter_keyword_forms_match_torch():
    x, index = R.normal(size=(2, 3)), numpy.array([[0], [2]])
    compare(lambda t, i: t.scatter(1, i, value=-2.0), lambda t, i: t.scatter(1, i, value=-2.0), [x, index])
    src = R.normal(size=(2, 1))
    compare(lambda t, i, s: t.scatter(1, i, s, reduce="add"), lambda t, i, s: t.scatter(1, i, s, reduce="add"),
            [x, index, src], grad=False)  # torch has no backward for reduce=
    y = em.zeros(2, 3)
    y.scatter_(1, em.tensor(index), value=4.0)
    assert y.tolist() == [[4, 0, 0], [0, 0, 4]]
    with pytest.raises(ValueError, match=r"scatter: reduce='multiply' is not supported"):
        em.scatter(em.ones(2, 3), 1, em.tensor(index), em.ones(2, 1), reduce="multiply")
    with pytest.raises(TypeError, match=r"scatter: expected exactly one of src and value"):
        em.scatter(em.ones(2, 3), 1, em.tensor(index))
    with pytest.raises(ValueError, match=r"gather: sparse_grad=True is not supported"):
        em.gather(em.ones(2, 3), 1, em.tensor(index), sparse_grad=True)
