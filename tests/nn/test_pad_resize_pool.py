"""F.pad, F.interpolate, adaptive average pooling and the pooling options (ceil_mode, dilation,
return_indices, count_include_pad, divisor_override): torch parity on values and grads, float64
gradcheck / gradgradcheck of the general pooling paths, layers, bad input."""

from __future__ import annotations

import numpy
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = numpy.random.default_rng(0)


def _parity(fn, tfn, x, kw, dtype=numpy.float64, pick=None):
    tol = 1e-5 if dtype == numpy.float32 else 1e-10
    xe = em.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    ye, yt = fn(xe, **kw), tfn(xt, **kw)
    if pick is not None:
        numpy.testing.assert_array_equal(ye[1].numpy(), yt[1].numpy())
        ye, yt = ye[0], yt[0]
    assert ye.shape == tuple(yt.shape) and ye.dtype == x.astype(dtype).dtype
    g = RNG.normal(size=tuple(yt.shape)).astype(dtype)
    (ye * em.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    numpy.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    numpy.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)


PADS = [
    ((2, 3, 5), (1, 2), "constant", {}),
    ((2, 3, 4, 5), (2, 1, 0, 3), "constant", {"value": -1.5}),
    ((2, 4, 5), (-1, 2, 1, -2), "constant", {}),
    ((1, 2, 3, 4, 5), (1, 0, 2, 1, 0, 2), "constant", {}),
    ((2, 3, 5), (4, 2), "reflect", {}),
    ((1, 2, 4, 5), (3, 1, 2, 3), "reflect", {}),
    ((1, 2, 3, 4, 5), (1, 2, 2, 1, 1, 1), "reflect", {}),
    ((2, 3, 4), (2, 3), "replicate", {}),
    ((1, 2, 4, 5), (3, 0, 1, 4), "replicate", {}),
    ((1, 1, 3, 3, 3), (1, 2, 2, 1, 1, 1), "replicate", {}),
    ((1, 2, 3, 4), (4, 1, 2, 3), "circular", {}),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("shape,p,mode,kw", PADS)
def test_pad_matches_torch(shape, p, mode, kw, dtype):
    _parity(lambda x, **k: F.pad(x, p, mode, **k), lambda x, **k: TF.pad(x, p, mode, **k), RNG.normal(size=shape),
            kw, dtype)


INTERP = [
    ((2, 3, 5, 7), {"size": (8, 9), "mode": "bilinear"}),
    ((2, 3, 5, 7), {"size": (3, 4), "mode": "bilinear", "align_corners": True}),
    ((1, 2, 5, 7), {"scale_factor": 1.7, "mode": "bilinear"}),
    ((1, 2, 5, 7), {"scale_factor": (0.6, 2.3), "mode": "bilinear", "align_corners": False}),
    ((1, 2, 5, 7), {"scale_factor": 1.7, "mode": "bilinear", "recompute_scale_factor": True}),
    ((1, 2, 3, 4), {"scale_factor": 2}),
    ((1, 2, 5, 7), {"size": (3, 11)}),
    ((1, 2, 5, 7), {"size": (4, 9), "mode": "nearest-exact"}),
    ((1, 2, 5, 7), {"scale_factor": 0.4}),
    ((2, 3, 5), {"size": 9, "mode": "linear"}),
    ((2, 3, 5), {"scale_factor": 0.5, "mode": "linear", "align_corners": True}),
    ((1, 2, 2, 3, 4), {"scale_factor": (2, 1, 3)}),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("shape,kw", INTERP)
def test_interpolate_matches_torch(shape, kw, dtype):
    _parity(F.interpolate, TF.interpolate, RNG.normal(size=shape), kw, dtype)


@pytest.mark.parametrize("shape,out", [((2, 3, 5, 7), (3, 4)), ((2, 3, 5, 7), 1), ((1, 2, 4, 6), (4, 3)),
                                       ((2, 5, 7), (2, None)), ((1, 1, 9, 9), (2, 7))])
def test_adaptive_avg_pool2d_matches_torch(shape, out):
    _parity(F.adaptive_avg_pool2d, TF.adaptive_avg_pool2d, RNG.normal(size=shape), {"output_size": out})


MAXPOOL = [
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 2, "dilation": 2},
    {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 1), "dilation": (2, 3), "ceil_mode": True},
    {"kernel_size": 2, "return_indices": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "return_indices": True, "ceil_mode": True},
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw", MAXPOOL)
def test_max_pool2d_options_match_torch(kw, dtype):
    _parity(F.max_pool2d, TF.max_pool2d, RNG.normal(size=(2, 3, 7, 8)), kw, dtype,
            pick=True if kw.get("return_indices") else None)


def test_max_pool2d_ties_go_to_the_first_maximum_like_torch():
    x = numpy.zeros((1, 1, 4, 4))
    _parity(F.max_pool2d, TF.max_pool2d, x, {"kernel_size": 3, "stride": 1, "dilation": 1, "ceil_mode": True,
                                               "return_indices": True}, pick=True)


AVGPOOL = [
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"kernel_size": 2, "divisor_override": 3},
    {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 1), "ceil_mode": True},
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw", AVGPOOL)
def test_avg_pool2d_options_match_torch(kw, dtype):
    _parity(F.avg_pool2d, TF.avg_pool2d, RNG.normal(size=(2, 3, 7, 8)), kw, dtype)


@pytest.mark.parametrize("fn,kw", [
    (F.max_pool2d, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "dilation": (1, 2)}),
    (F.avg_pool2d, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    (F.avg_pool2d, {"kernel_size": 2, "divisor_override": 3}),
])
def test_general_pool_paths_gradcheck(fn, kw):
    x = em.tensor(RNG.normal(size=(1, 2, 5, 6)), requires_grad=True)
    assert em.autograd.gradcheck(lambda x: fn(x, **kw), [x])
    assert em.autograd.gradgradcheck(lambda x: fn(x, **kw), [x])


def test_layers_match_torch():
    x = RNG.normal(size=(2, 3, 7, 8)).astype(numpy.float32)
    pairs = [
        (nn.AdaptiveAvgPool2d((3, 2)), torch.nn.AdaptiveAvgPool2d((3, 2))),
        (nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Upsample(scale_factor=2, mode="bilinear")),
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    ]
    for ours, theirs in pairs:
        numpy.testing.assert_allclose(ours(em.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=1e-5,
                                      atol=1e-6)
    values, indices = nn.MaxPool2d(2, return_indices=True)(em.tensor(x))
    numpy.testing.assert_array_equal(indices.numpy(), torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))[1])


def test_bad_inputs_name_the_op_and_shapes():
    x = em.randn(1, 2, 4, 5)
    with pytest.raises(ValueError, match=r"pad.*'reflect'.*\(5, 0\).*length 5.*\(1, 2, 4, 5\)"):
        F.pad(x, (5, 0), "reflect")
    with pytest.raises(ValueError, match=r"pad.*even-length"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"pad.*mode.*'wrap'"):
        F.pad(x, (1, 1), "wrap")
    with pytest.raises(em.ShapeError, match=r"pad.*covers 5 axes.*4"):
        F.pad(x, (1,) * 10)
    with pytest.raises(ValueError, match=r"interpolate.*exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(em.ShapeError, match=r"interpolate.*'bilinear' expects a 4-D.*\(2, 4, 5\)"):
        F.interpolate(em.randn(2, 4, 5), size=3, mode="bilinear")
    with pytest.raises(ValueError, match=r"interpolate.*align_corners.*'nearest'"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d.*positive.*\(0, 2\)"):
        F.adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(em.ShapeError, match=r"adaptive_avg_pool2d.*\(5,\)"):
        F.adaptive_avg_pool2d(em.randn(5), 2)
    with pytest.raises(ValueError, match=r"max_pool2d.*padding at most half.*\(2, 2\)"):
        F.max_pool2d(x, 2, padding=2, ceil_mode=True)
    with pytest.raises(em.ShapeError, match=r"max_pool2d.*dilated kernel 7.*padded input 4"):
        F.max_pool2d(x, 3, dilation=3)
    with pytest.raises(ValueError, match=r"avg_pool2d.*divisor_override.*0"):
        F.avg_pool2d(x, 2, divisor_override=0)
