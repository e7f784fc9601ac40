"""autocast casts each float32 weight once per region, re-casts after a change, and keeps float16 in float16."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.ops import convert

F = em.nn.functional


@pytest.fixture
def casts(monkeypatch):
    """Every Cast forward: (source dtype, target dtype, shape)."""
    seen = []
    real = convert.Cast.forward

    def counted(ctx, x, dtype):
        seen.append((numpy.dtype(x.dtype), numpy.dtype(dtype), tuple(x.shape)))
        return real(ctx, x, dtype)

    monkeypatch.setattr(convert.Cast, "forward", staticmethod(counted))
    return seen


F16, F32 = numpy.dtype(numpy.float16), numpy.dtype(numpy.float32)


def test_weight_used_twice_is_cast_once_and_gets_both_gradients(casts):
    rng = numpy.random.default_rng(0)
    W = em.tensor(rng.normal(size=(3, 4)), dtype=em.float32, requires_grad=True)
    x1, x2 = (em.tensor(rng.normal(size=(5, 4)), dtype=em.float32) for _ in range(2))
    with em.amp.autocast():
        y = F.linear(x1, W) + F.linear(x2, W)
    assert [c for c in casts if c[2] == (3, 4)] == [(F32, F16, (3, 4))]
    y.float().sum().backward()
    expected = (x1.numpy().sum(0) + x2.numpy().sum(0))[None, :].repeat(3, 0)
    numpy.testing.assert_allclose(W.grad.numpy(), expected, rtol=2e-3, atol=2e-3)


def test_two_backwards_through_one_cached_cast_accumulate(casts):
    W = em.tensor(numpy.ones((2, 3)), dtype=em.float32, requires_grad=True)
    x = em.tensor(numpy.arange(12.0).reshape(4, 3), dtype=em.float32)
    with em.amp.autocast():
        for _ in range(2):
            F.linear(x, W).float().sum().backward()
    assert len([c for c in casts if c[2] == (2, 3) and c[0] == F32]) == 1
    numpy.testing.assert_allclose(W.grad.numpy(), 2 * x.numpy().sum(0)[None, :].repeat(2, 0))


def test_a_changed_weight_is_cast_again(casts):
    model = em.nn.Linear(4, 2)
    opt = em.optim.SGD(model.parameters(), lr=0.5)
    x = em.randn(3, 4)
    for _ in range(2):
        with em.amp.autocast():
            y = model(x)
            assert numpy.array_equal(y.numpy(), (x.numpy().astype(F16) @ model.weight.numpy().astype(F16).T
                                                 + model.bias.numpy().astype(F16)))
        opt.zero_grad()
        y.float().sum().backward()
        opt.step()
    assert len([c for c in casts if c[2] == (2, 4)]) == 2  # one per region: the step changed the weight
    with em.amp.autocast():
        model(x)
        with em.no_grad():
            model.weight.mul_(2.0)  # an in-place change inside the region: the version moved
        y = model(x)
    assert len([c for c in casts if c[2] == (2, 4)]) == 4
    numpy.testing.assert_array_equal(y.numpy(), x.numpy().astype(F16) @ model.weight.numpy().astype(F16).T
                                     + model.bias.numpy().astype(F16))


def test_no_grad_casts_are_not_reused_with_grad(casts):
    W = em.tensor(numpy.ones((2, 2)), dtype=em.float32, requires_grad=True)
    x = em.ones(1, 2)
    with em.amp.autocast():
        with em.no_grad():
            assert F.linear(x, W).grad_fn is None
        y = F.linear(x, W)
    assert y.grad_fn is not None
    assert [c[2] for c in casts if c[2] == (2, 2)] == [(2, 2), (2, 2)]  # W in no_grad, then W with grad


def test_the_cache_is_cleared_on_exit_also_after_an_error():
    W = em.tensor(numpy.ones((2, 2)), dtype=em.float32, requires_grad=True)
    region = em.amp.autocast()
    with pytest.raises(RuntimeError, match="boom"):
        with region:
            caster = em.autograd.function.AUTOCAST_CASTER.get()
            F.linear(em.ones(1, 2), W)
            assert len(caster.cache) == 1
            raise RuntimeError("boom")
    assert caster.cache == {} and em.autograd.function.AUTOCAST_CASTER.get() is None


def test_a_float16_convnet_step_has_no_float32_round_trips(casts):
    """Each weight is cast up/down once; the only float16 -> float32 activation cast is the loss input."""
    em.manual_seed(0)
    model = em.models.SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 3, "filter_size": 3, "pad": 1,
                                                                    "stride": 1}, hidden_size=6, output_size=4)
    x, t = em.randn(2, 1, 8, 8), em.tensor([1, 3])
    with em.amp.autocast():
        loss = F.cross_entropy(model(x), t)
    params = {tuple(p.shape) for p in model.parameters()}
    down = [c for c in casts if c[:2] == (F32, F16)]
    up = [c for c in casts if c[:2] == (F16, F32)]
    assert sorted(c[2] for c in down if c[2] in params) == sorted(tuple(p.shape) for p in model.parameters())
    assert [c[2] for c in down if c[2] not in params] == [(2, 1, 8, 8)]  # the input batch
    assert up == [(F16, F32, (2, 4))]  # the logits entering the float32 loss
    loss.backward()
    assert all(p.grad.dtype == em.float32 for p in model.parameters())
