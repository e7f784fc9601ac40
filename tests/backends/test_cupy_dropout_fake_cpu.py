"""Dropout through the CuPy backend on the fake ``cupy`` module: the device mask path, no host traffic.

The fake module's arrays are NumPy arrays, so the Philox kernels run as their
emulation; what this checks is the wiring: the state lives on each device and
is advanced there, the masks equal the CPU's for one seed, and a training step
with dropout neither reads the host (``no_host_sync``) nor uploads host data.
"""

from __future__ import annotations

import contextlib

import numpy
import pytest

import ember as em
from ember.backends.reference import philox
from test_cupy_fake_module_cpu import FakeCupyArray, HostSyncError, fake_cupy, no_host_sync  # noqa: F401 - a fixture


@contextlib.contextmanager
def no_host_upload(cupy, monkeypatch):
    """Make every host->device copy through the fake module (asarray/array of host data, ``set``) raise."""
    uploads: list = []

    def guard(name, real):
        def call(obj, *args, **kwargs):
            if isinstance(obj, numpy.ndarray) and not isinstance(obj, FakeCupyArray) or isinstance(obj, (list, tuple)):
                uploads.append(name)
                raise HostSyncError(f"host->device copy ({name}) inside a capturable step")
            return real(obj, *args, **kwargs)

        return call

    with monkeypatch.context() as m:
        m.setattr(cupy, "asarray", guard("asarray", cupy.asarray), raising=False)
        m.setattr(cupy, "array", guard("array", cupy.array), raising=False)
        m.setattr(FakeCupyArray, "set", lambda self, host, stream=None: guard("set", None)(host))
        yield uploads


def _cupy():
    import sys

    return sys.modules["cupy"]


def test_device_masks_equal_the_cpu_masks_per_device(fake_cupy):
    em.manual_seed(42)
    x = numpy.full((5, 13), 3.0, dtype=numpy.float32)
    masks = {}
    for dev in ("cpu", "cuda:0", "cuda:1"):
        a = em.nn.functional.dropout(em.tensor(x, device=dev), 0.3)
        b = em.nn.functional.dropout(em.tensor(x, device=dev), 0.3)
        masks[dev] = (a.numpy(), b.numpy())
    for dev in ("cuda:0", "cuda:1"):  # each device keeps its own offset: the k-th masks agree
        for got, want in zip(masks[dev], masks["cpu"]):
            numpy.testing.assert_array_equal(got, want)
    state = em.default_philox_generator().state("cuda:1", _cupy())
    assert isinstance(state, FakeCupyArray) and state.device.id == 1  # the state lives on its GPU
    assert em.default_philox_generator().get_state()["offsets"] == {"cpu": 34, "cuda:0": 34, "cuda:1": 34}


def test_dropout_forward_backward_reads_and_uploads_nothing(fake_cupy, monkeypatch):
    em.manual_seed(1)
    x = em.tensor(numpy.ones((4, 9), numpy.float32), device="cuda", requires_grad=True)
    em.nn.functional.dropout(x, 0.5)  # the first use makes the state (as a warm-up step would)
    with no_host_sync(), no_host_upload(_cupy(), monkeypatch) as uploads:
        y = em.nn.functional.dropout(x, 0.5)
        y.sum().backward()
    assert uploads == []
    with no_host_upload(_cupy(), monkeypatch) as uploads, pytest.raises(HostSyncError, match="host->device"):
        em.tensor(numpy.ones(3), device="cuda")  # the guard does see an upload
    assert uploads
    mask = philox.dropout_mask((4, 9), 0.5, philox.new_state(1, 9), numpy.float32)
    numpy.testing.assert_array_equal(y.numpy(), mask)
    numpy.testing.assert_array_equal(x.grad.numpy(), mask)


def _dropout_net():
    em.manual_seed(0)
    return em.nn.Sequential(em.nn.Linear(6, 16), em.nn.ReLU(), em.nn.Dropout(0.4), em.nn.Linear(16, 5))


def test_training_step_with_dropout_makes_no_host_sync_and_matches_the_cpu(fake_cupy, monkeypatch):
    x = numpy.random.default_rng(3).normal(size=(8, 6)).astype(numpy.float32)
    t = numpy.array([0, 1, 2, 3, 4, 0, 1, 2])
    params = {}
    for dev in ("cpu", "cuda"):
        model = _dropout_net().to(dev)
        opt = em.optim.Adam(model.parameters(), lr=1e-2)
        xs, ts = em.tensor(x, device=dev), em.tensor(t, device=dev)
        for _ in range(3):
            with contextlib.ExitStack() as guards:
                if dev == "cuda":
                    guards.enter_context(no_host_sync())
                    guards.enter_context(no_host_upload(_cupy(), monkeypatch))
                opt.zero_grad()
                loss = em.nn.functional.cross_entropy(model(xs), ts)
                loss.backward()
                opt.step()
        params[dev] = [p.numpy() for p in model.parameters()]
    for a, b in zip(params["cuda"], params["cpu"]):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # same masks: the same training


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float64])
def test_device_masks_in_other_dtypes(fake_cupy, dtype):
    em.manual_seed(6)
    x = numpy.ones((3, 7), dtype=dtype)
    got = em.nn.functional.dropout(em.tensor(x, device="cuda"), 0.5).numpy()
    numpy.testing.assert_array_equal(got, philox.dropout_mask((3, 7), 0.5, philox.new_state(6), dtype))


class _CapturingStream:
    def is_capturing(self):
        return True


def test_capture_refuses_what_would_freeze_the_mask(fake_cupy, monkeypatch):
    x = em.tensor(numpy.ones((2, 8), numpy.float32), device="cuda")
    gen = em.PhiloxGenerator(3)
    monkeypatch.setattr(_cupy().cuda, "get_current_stream", lambda: _CapturingStream())
    with pytest.raises(RuntimeError, match=r"dropout: the dropout generator has no state on cuda:0 yet.*warm-up"):
        em.nn.functional.dropout(x, 0.5, generator=gen)  # its fill would be captured and reset the offset
    with pytest.raises(RuntimeError, match="numpy.random.Generator draws its key on the host"):
        em.nn.functional.dropout(x, 0.5, generator=numpy.random.default_rng(0))
    monkeypatch.setattr(_cupy().cuda, "get_current_stream", lambda: None)
    eager = em.nn.functional.dropout(x, 0.5, generator=gen).numpy()  # the warm-up call makes the state
    monkeypatch.setattr(_cupy().cuda, "get_current_stream", lambda: _CapturingStream())
    captured = em.nn.functional.dropout(x, 0.5, generator=gen).numpy()  # now fine: the state exists
    state = philox.new_state(3)
    numpy.testing.assert_array_equal(eager, philox.dropout_mask((2, 8), 0.5, state, numpy.float32))
    numpy.testing.assert_array_equal(captured, philox.dropout_mask((2, 8), 0.5, state, numpy.float32))
