"""nn.utils: gradient clipping and parameter vectors against PyTorch; ModuleDict and ParameterList."""

from __future__ import annotations

import math

import numpy
import pytest

import ember as em
from ember.errors import ShapeError
from ember.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters

RNG = numpy.random.default_rng(0)
GRADS = [RNG.standard_normal((3, 4)), RNG.standard_normal(5), RNG.standard_normal((2, 2, 2))]


def em_params(scale=1.0, dtype=em.float64):
    ps = [em.nn.Parameter(em.zeros(g.shape, dtype=dtype)) for g in GRADS]
    for p, g in zip(ps, GRADS):
        p.grad = em.tensor(g * scale, dtype=dtype)
    return ps


def torch_params(torch, scale=1.0):
    ps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in GRADS]
    for p, g in zip(ps, GRADS):
        p.grad = torch.tensor(g * scale)
    return ps


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours = em_params()
    theirs = torch_params(torch)
    n_ours = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert n_ours.shape == () and n_ours.dtype == em.float64
    assert n_ours.item() == pytest.approx(n_theirs.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        numpy.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_nonfinite_and_empty():
    ps = em_params()
    ps[1].grad.data[0] = numpy.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert numpy.isnan(clip_grad_norm_(ps, 1.0).item())
    assert clip_grad_norm_([em.nn.Parameter(em.zeros(2))], 1.0).item() == 0.0
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(em_params(), 1.0, norm_type=0)


def test_clip_grad_norm_single_tensor_float32():
    p = em.nn.Parameter(em.zeros(4))
    p.grad = em.tensor([3.0, 4.0, 0.0, 0.0])
    total = clip_grad_norm_(p, 1.0)
    assert total.dtype == em.float32 and total.item() == pytest.approx(5.0)
    numpy.testing.assert_allclose(numpy.linalg.norm(p.grad.numpy()), 1.0, rtol=1e-5)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = em_params(), torch_params(torch)
    clip_grad_value_(ours, 0.3)
    torch.nn.utils.clip_grad_value_(theirs, 0.3)
    for a, b in zip(ours, theirs):
        numpy.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(ours, -1)


def test_parameters_vector_round_trip_and_gradient():
    torch = pytest.importorskip("torch")
    lin = em.nn.Linear(3, 2)
    vec = parameters_to_vector(lin.parameters())
    assert vec.shape == (8,)
    tl = torch.nn.Linear(3, 2)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(lin.weight.numpy()))
        tl.bias.copy_(torch.tensor(lin.bias.numpy()))
    numpy.testing.assert_array_equal(vec.numpy(), torch.nn.utils.parameters_to_vector(tl.parameters()).detach())
    (vec * vec).sum().backward()  # differentiable, like torch's
    numpy.testing.assert_allclose(lin.weight.grad.numpy(), 2 * lin.weight.numpy())
    vector_to_parameters(em.arange(8, dtype=em.float32), lin.parameters())
    numpy.testing.assert_array_equal(lin.weight.numpy(), numpy.arange(6).reshape(2, 3))
    numpy.testing.assert_array_equal(lin.bias.numpy(), [6, 7])
    with pytest.raises(ShapeError, match="8 elements"):
        vector_to_parameters(em.zeros(7), lin.parameters())
    with pytest.raises(TypeError, match="Tensor"):
        vector_to_parameters(numpy.zeros(8), lin.parameters())


def test_module_dict_registers_and_orders():
    d = em.nn.ModuleDict({"enc": em.nn.Linear(2, 3)})
    d["dec"] = em.nn.Linear(3, 2)
    d.update([("act", em.nn.ReLU())])
    assert list(d) == ["enc", "dec", "act"] and "dec" in d and len(d) == 3
    assert [n for n, _ in d.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert set(d.state_dict()) == {"enc.weight", "enc.bias", "dec.weight", "dec.bias"}
    d.pop("enc")
    assert list(d.keys()) == ["dec", "act"] and len(list(d.parameters())) == 2
    with pytest.raises(KeyError):
        d["a.b"] = em.nn.ReLU()
    with pytest.raises(TypeError):
        d.update([em.nn.ReLU()])


def test_parameter_list():
    pl = em.nn.ParameterList([em.nn.Parameter(em.ones(2)), em.zeros(3)])
    assert len(pl) == 2 and all(isinstance(p, em.nn.Parameter) for p in pl)
    pl[0] = em.nn.Parameter(em.zeros(4))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"] and pl[0].shape == (4,)
    with pytest.raises(TypeError):
        pl.append(3)
    with pytest.raises(IndexError):
        pl[5] = em.zeros(1)
