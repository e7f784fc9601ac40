"""No device->host sync inside a CUDA training step, checked on the CPU with the fake ``cupy`` module.

Inside ``no_host_sync`` every device->host conversion of the fake module
(``.get()``, ``cupy.asnumpy``, ``int``/``float``/``bool``/``.item()``/``.tolist()``
of a device array) raises, so a whole step that passes here makes no host read
on a real GPU either - except conversions the fake cannot see (an implicit
``numpy.asarray`` of a device array, which real CuPy refuses anyway).
"""

from __future__ import annotations

import sys

import numpy
import pytest

import ember as em
from test_cupy_fake_module_cpu import HostSyncError, fake_cupy, no_host_sync  # noqa: F401 - fake_cupy: a fixture

def _small_model(model_name):
    """A tiny TwoLayerNet or SimpleConvNet with its input batch."""
    rng = numpy.random.default_rng(1)
    if model_name == "SimpleConvNet":
        x = rng.normal(size=(4, 1, 8, 8)).astype(numpy.float32)
        model = em.models.SimpleConvNet(input_dim=(1, 8, 8), conv_param={
            "filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1}, hidden_size=6, output_size=5)
    else:
        x = rng.normal(size=(4, 6)).astype(numpy.float32)
        model = em.models.TwoLayerNet(6, 8, 5)
    return model.to("cuda"), em.tensor(x, device="cuda"), em.tensor(numpy.array([0, 3, 1, 4]), device="cuda")


def test_no_host_sync_guard_catches_every_conversion(fake_cupy):
    a = em.ones(3, device="cuda").data
    for read in (lambda: a.get(), lambda: int(a[0]), lambda: float(a[0]), lambda: bool(a[0]), lambda: a[0].item(),
                 lambda: a.tolist(), lambda: sys.modules["cupy"].asnumpy(a), lambda: range(a[0].astype(int))):
        with no_host_sync(), pytest.raises(HostSyncError, match="no-sync training step"):
            read()
    with no_host_sync(allowed=1) as reads:
        float(a[1])
        with pytest.raises(HostSyncError):
            float(a[2])
    assert reads == ["float"] and a.tolist() == [1.0, 1.0, 1.0]  # outside the guard: allowed again


@pytest.mark.parametrize("model_name", ["TwoLayerNet", "SimpleConvNet"])
def test_training_step_makes_no_host_sync(fake_cupy, model_name):
    em.manual_seed(0)
    model, x, t = _small_model(model_name)
    opt = em.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.numpy().copy() for p in model.parameters()]
    with no_host_sync():
        opt.zero_grad()
        loss = em.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
    assert numpy.isfinite(loss.item())
    assert all(not numpy.array_equal(b, p.numpy()) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("model_name", ["TwoLayerNet", "SimpleConvNet"])
def test_amp_step_reads_the_host_once_to_decide_the_skip(fake_cupy, model_name):
    em.manual_seed(0)
    model, x, t = _small_model(model_name)
    opt = em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = em.amp.GradScaler(init_scale=2.0**10)
    before = [p.numpy().copy() for p in model.parameters()]
    with no_host_sync(allowed=1) as reads:
        opt.zero_grad()
        with em.amp.autocast():
            loss = em.nn.functional.cross_entropy(model(x), t)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    assert reads == ["bool"]  # the one found-inf flag, read once for the whole step
    assert numpy.isfinite(loss.item()) and scaler.get_scale() == 2.0**10
    assert all(not numpy.array_equal(b, p.numpy()) for b, p in zip(before, model.parameters()))


def test_grad_scaler_skips_on_a_device_flag(fake_cupy):
    w = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    v = em.tensor([3.0], device="cuda", requires_grad=True)
    opt = em.optim.SGD([w, v], lr=0.5)
    scaler = em.amp.GradScaler(init_scale=4.0)
    w.grad, v.grad = em.tensor([4.0, numpy.inf], device="cuda"), em.tensor([8.0], device="cuda")
    with no_host_sync():
        scaler.unscale_(opt)  # the check stays on the device
    numpy.testing.assert_array_equal(v.grad.numpy(), [2.0])
    assert scaler.step(opt) is None  # skipped: the second gradient of w was inf
    scaler.update()
    assert w.tolist() == [1.0, 2.0] and v.tolist() == [3.0] and scaler.get_scale() == 2.0
    w.grad, v.grad = em.tensor([2.0, 2.0], device="cuda"), em.tensor([4.0], device="cuda")
    scaler.step(opt)
    scaler.update()
    assert w.tolist() == [0.5, 1.5] and v.tolist() == [2.0] and scaler.get_scale() == 2.0


def test_bad_class_index_on_cuda_raises_at_the_next_sync(fake_cupy):
    logits = em.tensor(numpy.zeros((3, 4), numpy.float32), device="cuda", requires_grad=True)
    with no_host_sync():  # the check itself reads nothing on the host
        loss = em.nn.functional.cross_entropy(logits, em.tensor([0, 7, 2], device="cuda"))
    with pytest.raises(ValueError, match=r"cross_entropy: expected class indices in \[0, 4\).*got 7.*\[0, 7\]"):
        loss.item()
    assert numpy.isnan(loss.item())  # reported once; the bad row gave NaN, not an out-of-bounds read
    em.nn.functional.cross_entropy(logits, em.tensor([0, -100, 2], device="cuda"))
    with pytest.raises(ValueError, match="got -100.*= ignore_index.*weight=ember.ones"):
        em.cuda.synchronize()
    kept = em.nn.functional.cross_entropy(logits, em.tensor([0, -100, 2], device="cuda"),
                                          weight=em.ones(4, device="cuda"))
    assert kept.item() == pytest.approx(numpy.log(4.0))  # the general path skips the ignored row


def test_grad_scaler_keeps_one_flag_per_gpu(fake_cupy):
    w = em.tensor([1.0], device="cuda:0", requires_grad=True)
    v = em.tensor([1.0], device="cuda:1", requires_grad=True)
    opt = em.optim.SGD([w, v], lr=1.0)
    scaler = em.amp.GradScaler(init_scale=2.0)
    w.grad, v.grad = em.tensor([2.0], device="cuda:0"), em.tensor([numpy.nan], device="cuda:1")
    with no_host_sync(allowed=2) as reads:
        assert scaler.step(opt) is None  # the nan on the second GPU skips the whole step
    assert reads == ["bool", "bool"]  # one read per GPU's flag
    flags = scaler._per_optimizer[opt].found_inf
    assert flags is True
    scaler.update()
    assert w.tolist() == [1.0] and v.tolist() == [1.0] and scaler.get_scale() == 1.0
