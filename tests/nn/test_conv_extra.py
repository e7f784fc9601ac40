"""conv2d(dilation, groups, 'same'), conv1d, conv_transpose2d and their layers: torch parity
(values and all grads), float64 gradcheck / gradgradcheck of the general paths, bad input."""

from __future__ import annotations

import numpy
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = numpy.random.default_rng(0)


def _parity(fn, tfn, arrays, kw, dtype=numpy.float64, tol=1e-9):
    es = [None if a is None else em.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ts = [None if a is None else torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ye, yt = fn(*es, **kw), tfn(*ts, **kw)
    assert ye.shape == tuple(yt.shape)
    g = RNG.normal(size=tuple(yt.shape)).astype(dtype)
    (ye * em.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    numpy.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    for e, t in zip(es, ts):
        if e is not None:
            numpy.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


CONV2D = [
    ((2, 4, 9, 8), (6, 4, 3, 2), {"dilation": 2}),
    ((2, 4, 9, 8), (6, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1}),
    ((1, 4, 9, 8), (8, 1, 3, 2), {"groups": 4, "dilation": (2, 1), "stride": (1, 2), "padding": (2, 1)}),
    ((2, 3, 6, 7), (4, 3, 4, 3), {"padding": "same"}),
    ((2, 3, 6, 7), (4, 3, 2, 2), {"padding": "same", "dilation": 3}),
    ((2, 3, 6, 7), (4, 3, 3, 3), {"padding": "valid"}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note about its own zero-padded copy
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("xs,ws,kw", CONV2D)
def test_conv2d_options_match_torch(xs, ws, kw, dtype):
    arrays = [RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[0])]
    _parity(F.conv2d, TF.conv2d, arrays, kw, dtype, 1e-4 if dtype == numpy.float32 else 1e-9)


CONV_T = [
    ((2, 4, 5, 6), (4, 3, 3, 2), {}),
    ((2, 4, 5, 5), (4, 3, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 4, 5), (4, 2, 3, 2), {"groups": 2, "dilation": 2, "stride": (2, 1)}),
    ((1, 2, 3, 4), (2, 3, 4, 4), {"stride": 3, "padding": 2, "output_padding": (2, 1)}),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("xs,ws,kw", CONV_T)
def test_conv_transpose2d_matches_torch(xs, ws, kw, dtype):
    g = kw.get("groups", 1)
    arrays = [RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[1] * g)]
    _parity(F.conv_transpose2d, TF.conv_transpose2d, arrays, kw, dtype, 1e-4 if dtype == numpy.float32 else 1e-9)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 4, 11), (6, 4, 3), {}),
    ((2, 4, 11), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ((1, 3, 8), (2, 3, 4), {"padding": "same"}),
])
def test_conv1d_matches_torch(xs, ws, kw):
    _parity(F.conv1d, TF.conv1d, [RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[0])], kw)


@pytest.mark.parametrize("kw", [{"dilation": 2, "padding": 1}, {"groups": 2, "stride": 2}, {"padding": "same"}])
def test_conv2d_general_path_gradcheck(kw):
    x = em.tensor(RNG.normal(size=(1, 2, 5, 5)), requires_grad=True)
    W = em.tensor(RNG.normal(size=(2, 2 // kw.get("groups", 1), 2, 2)), requires_grad=True)
    b = em.tensor(RNG.normal(size=(2,)), requires_grad=True)

    def f(x, W, b):
        return F.conv2d(x, W, b, **kw)

    assert em.autograd.gradcheck(f, [x, W, b])
    assert em.autograd.gradgradcheck(f, [x, W, b])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_layers_match_torch():
    x = RNG.normal(size=(2, 4, 6, 6)).astype(numpy.float32)
    pairs = [
        (nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), torch.nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)),
    ]
    for ours, theirs in pairs:
        assert ours.weight.shape == tuple(theirs.weight.shape)
        ours.weight.data[...] = theirs.weight.detach().numpy()
        ours.bias.data[...] = theirs.bias.detach().numpy()
        numpy.testing.assert_allclose(ours(em.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                      rtol=1e-4, atol=1e-5)
    c1, t1 = nn.Conv1d(4, 2, 3, padding="same"), torch.nn.Conv1d(4, 2, 3, padding="same")
    c1.weight.data[...] = t1.weight.detach().numpy()
    c1.bias.data[...] = t1.bias.detach().numpy()
    x1 = x[:, :, 0]
    numpy.testing.assert_allclose(c1(em.tensor(x1)).numpy(), t1(torch.tensor(x1)).detach().numpy(), rtol=1e-4,
                                  atol=1e-5)


def test_bad_inputs_name_the_op_and_shapes():
    x = em.randn(1, 4, 5, 5)
    with pytest.raises(em.ShapeError, match=r"conv2d.*2 channels.*\(6, 1, 3, 3\) x groups=2.*\(1, 4, 5, 5\)"):
        F.conv2d(x, em.randn(6, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"conv2d.*divisible by groups=3"):
        F.conv2d(x, em.randn(6, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match=r"conv2d.*'same' needs stride 1"):
        F.conv2d(x, em.randn(2, 4, 3, 3), padding="same", stride=2)
    with pytest.raises(ValueError, match=r"conv2d.*padding 'same', 'valid'"):
        F.conv2d(x, em.randn(2, 4, 3, 3), padding="full")
    with pytest.raises(em.ShapeError, match=r"conv1d.*\(N, C, L\).*\(1, 4, 5, 5\)"):
        F.conv1d(x, em.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d.*output_padding.*\(2, 2\).*stride \(2, 2\)"):
        F.conv_transpose2d(x, em.randn(4, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(em.ShapeError, match=r"conv_transpose2d.*3 channels.*\(3, 2, 3, 3\).*\(1, 4, 5, 5\)"):
        F.conv_transpose2d(x, em.randn(3, 2, 3, 3))
    with pytest.raises(em.ShapeError, match=r"conv_transpose2d.*b of shape \(2,\)"):
        F.conv_transpose2d(x, em.randn(4, 2, 3, 3), em.randn(3))
