"""repeat, repeat_interleave, flip, roll, unflatten, split, chunk: PyTorch parity, views, errors."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")

from op_parity import compare  # noqa: E402  (needs torch)

R = numpy.random.default_rng(11)
X34, X234 = R.normal(size=(3, 4)), R.normal(size=(2, 3, 4))


@pytest.mark.parametrize("x,sizes", [(X34, (2, 1)), (X34, (1, 3, 2)), (X234, (2, 1, 2)), (numpy.asarray(1.5), (3,)),
                                     (X34, (0, 2))], ids=["2d", "more sizes", "3d", "0-d", "zero"])
def test_repeat_matches_torch(x, sizes):
    compare(lambda t: t.repeat(*sizes), lambda t: t.repeat(*sizes), [x])
    compare(lambda t: t.repeat(sizes), lambda t: t.repeat(sizes), [x])


@pytest.mark.parametrize("repeats,dim", [(2, None), (3, 0), (2, -1), ([1, 0, 2], 1), ([2, 1, 3, 1], -1)], ids=str)
def test_repeat_interleave_matches_torch(repeats, dim):
    x = X234 if dim is not None and dim in (1,) else X34
    if isinstance(repeats, list):
        reps = numpy.array(repeats)
        compare(lambda t, r: em.repeat_interleave(t, r, dim), lambda t, r: torch.repeat_interleave(t, r, dim),
                [x, reps])
    else:
        compare(lambda t: t.repeat_interleave(repeats, dim=dim), lambda t: t.repeat_interleave(repeats, dim=dim), [x])


def test_repeat_interleave_of_counts_alone_matches_torch():
    counts = numpy.array([2, 0, 3])
    assert em.repeat_interleave(em.tensor(counts)).tolist() == torch.repeat_interleave(torch.tensor(counts)).tolist()


@pytest.mark.parametrize("x,dims", [(X34, (0,)), (X34, (-1,)), (X234, (0, 2)), (X234, (-2, -1, 0))], ids=str)
def test_flip_matches_torch(x, dims):
    compare(lambda t: em.flip(t, dims), lambda t: torch.flip(t, dims), [x])
    compare(lambda t: t.flip(*dims), lambda t: t.flip(*dims), [x])


def test_flip_returns_a_copy_like_torch():
    x = em.tensor([1.0, 2.0, 3.0])
    y = x.flip(0)
    y[0] = 10.0
    assert x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("x,shifts,dims", [(X34, 1, None), (X34, -5, None), (X34, 1, 1), (X34, (2, -1), (0, 1)),
                                           (X234, (1, 7), (-1, 0)), (X234, (1, 1), (1, 1))], ids=str)
def test_roll_matches_torch(x, shifts, dims):
    compare(lambda t: em.roll(t, shifts, dims), lambda t: torch.roll(t, shifts, dims), [x])


@pytest.mark.parametrize("x,dim,sizes", [(R.normal(size=(2, 6)), 1, (2, 3)), (R.normal(size=(6, 2)), -2, (3, -1)),
                                         (R.normal(size=(4,)), 0, (2, 1, 2))], ids=str)
def test_unflatten_matches_torch(x, dim, sizes):
    compare(lambda t: em.unflatten(t, dim, sizes), lambda t: torch.unflatten(t, dim, sizes), [x])
    compare(lambda t: t.unflatten(dim, sizes), lambda t: t.unflatten(dim, sizes), [x])


@pytest.mark.parametrize("arg,dim", [(2, 0), (3, -1), ([1, 0, 2], 1), ([4, 0], -1), (5, 0)], ids=str)
def test_split_matches_torch(arg, dim):
    x = X34 if dim != 1 else X234
    compare(lambda t: em.split(t, arg, dim), lambda t: torch.split(t, arg, dim), [x])
    compare(lambda t: t.split(arg, dim), lambda t: t.split(arg, dim), [x])


@pytest.mark.parametrize("chunks,dim", [(2, 0), (3, -1), (4, 1), (5, 0), (1, 0)], ids=str)
def test_chunk_matches_torch(chunks, dim):
    x = X34 if dim != 1 else X234
    compare(lambda t: em.chunk(t, chunks, dim), lambda t: torch.chunk(t, chunks, dim), [x])
    compare(lambda t: t.chunk(chunks, dim), lambda t: t.chunk(chunks, dim), [x])


def test_chunk_and_split_of_an_empty_dim_match_torch():
    z = numpy.zeros((2, 0))
    assert len(em.zeros(2, 0).chunk(3, 1)) == len(torch.zeros(2, 0).chunk(3, 1))
    assert em.split(em.tensor(z), [], 1) == () == torch.split(torch.tensor(z), [], 1)


def test_split_pieces_are_views_and_one_piece_alone_gets_a_gradient():
    x = em.tensor(X34, dtype=em.float64, requires_grad=True)
    a, b = x.split(2)
    assert numpy.shares_memory(a.numpy(), x.numpy())
    (b * 3.0).sum().backward()
    expected = numpy.zeros((3, 4))
    expected[2:] = 3.0
    numpy.testing.assert_array_equal(x.grad.numpy(), expected)


def test_split_is_twice_differentiable_with_unused_pieces():
    x = em.tensor(X34, dtype=em.float64, requires_grad=True)
    assert em.autograd.gradgradcheck(lambda t: em.split(t, 3, 1)[1] ** 3, [x])


def test_rearrange_bad_input_names_the_op_and_shapes():
    x = em.ones(3, 4)
    with pytest.raises(ShapeError, match=r"repeat: expected at least 2 sizes for a tensor of shape \(3, 4\)"):
        x.repeat(2)
    with pytest.raises(ValueError, match=r"repeat: expected non-negative sizes"):
        x.repeat(2, -1)
    with pytest.raises(ShapeError, match=r"repeat_interleave: expected 4 repeats .*\(3,\)"):
        em.repeat_interleave(x, em.tensor([1, 2, 3]), dim=1)
    with pytest.raises(DTypeError, match=r"repeat_interleave: expected integer repeats, got dtype float32"):
        em.repeat_interleave(x, em.ones(4), dim=1)
    with pytest.raises(ValueError, match=r"repeat_interleave: expected non-negative repeats"):
        em.repeat_interleave(x, -1)
    with pytest.raises(IndexError, match=r"flip: repeated axis"):
        x.flip(0, 0)
    with pytest.raises(IndexError, match=r"roll: axis 2 is out of range"):
        x.roll(1, 2)
    with pytest.raises(ShapeError, match=r"roll: expected as many shifts as dims"):
        x.roll((1, 2), 0)
    with pytest.raises(ShapeError, match=r"unflatten: sizes \(2, 3\) do not multiply up to the size 4 of dim 1"):
        x.unflatten(1, (2, 3))
    with pytest.raises(ShapeError, match=r"split: sizes \[1, 1\] must be non-negative and add up to 3"):
        x.split([1, 1])
    with pytest.raises(ValueError, match=r"split: expected a positive split size"):
        x.split(0)
    with pytest.raises(ValueError, match=r"chunk: expected a positive number of chunks"):
        x.chunk(0)
    with pytest.raises(ShapeError, match=r"chunk: expected a tensor of at least 1 dimension"):
        em.tensor(1.0).chunk(2)


def test_flip_takes_dims_as_keyword_like_torch():
    compare(lambda t: em.flip(t, dims=[0, 1]), lambda t: torch.flip(t, dims=[0, 1]), [X34])
    compare(lambda t: t.flip(dims=(-1,)), lambda t: t.flip(dims=(-1,)), [X34])
    with pytest.raises(TypeError, match=r"flip: expected the dims either positionally or as dims="):
        em.flip(em.ones(2), 0, dims=0)
