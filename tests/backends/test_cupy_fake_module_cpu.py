"""``ember.backends.cupy.backend`` itself, imported on the CPU against a fake ``cupy`` module.

The fake module is NumPy with a distinct array type that remembers its "GPU"
(``array.device.id``), two fake devices, ``Device`` contexts, streams/events,
pinned buffers (``cupyx.empty_pinned``) and ``ndarray.set``.  Because its
arrays are NumPy arrays, ``cupy_source.launch`` runs the kernels' emulations,
so a whole training step goes through the CuPy backend's wiring (kernel
namespaces, per-device views, host<->device copies, pinned DataLoader uploads)
and is compared with the same step on the CPU.  What it cannot check: real
CuPy semantics, compilation and execution on a GPU (see tests/gpu/).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import types

import numpy
import pytest

import ember as em

devmod = importlib.import_module("ember.backends.device")


class _State:
    """The fake driver's state: the current device and what was synchronised."""

    current = 0
    synced: list = []  # noqa: RUF012 - reset by the fixture, shared on purpose
    host_read_budget = None  # None: host reads allowed; an int: how many more are allowed (no_host_sync)
    host_reads: list = []  # noqa: RUF012 - the reads made inside no_host_sync


class HostSyncError(AssertionError):
    """A device->host read inside ``no_host_sync``: on a real GPU it would stall the step."""


def _host_read(what: str) -> None:
    """Note a device->host conversion; raise once ``no_host_sync``'s allowance is spent."""
    if _State.host_read_budget is None:
        return
    if _State.host_read_budget <= 0:
        raise HostSyncError(f"device->host read ({what}) inside a no-sync training step")
    _State.host_read_budget -= 1
    _State.host_reads.append(what)


@contextlib.contextmanager
def no_host_sync(allowed: int = 0):
    """Make every device->host conversion of the fake module raise, after ``allowed`` of them."""
    _State.host_read_budget, _State.host_reads = allowed, []
    try:
        yield _State.host_reads
    finally:
        _State.host_read_budget = None


class FakeCupyArray(numpy.ndarray):
    """A NumPy array that records the fake GPU it was made on."""

    def __array_finalize__(self, obj):
        self._dev = getattr(obj, "_dev", _State.current)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return numpy.asarray(arr).view(FakeCupyArray)

    @property
    def device(self):
        return types.SimpleNamespace(id=self._dev)

    def set(self, host, stream=None):
        self[...] = host

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if isinstance(out, numpy.generic):  # CuPy gives a 0-d device array, never a host scalar
            out = numpy.asarray(out).view(FakeCupyArray)
            out._dev = self._dev
        return out

    # device->host conversions: each one is a sync on a real GPU (see no_host_sync)
    def get(self, stream=None):
        _host_read("get")
        return numpy.array(self, copy=True).view(numpy.ndarray)

    def item(self, *args):
        _host_read("item")
        return super().item(*args)

    def tolist(self):
        _host_read("tolist")
        return super().tolist()

    def __int__(self):
        _host_read("int")
        return super().__int__()

    def __index__(self):
        _host_read("index")
        return super().__index__()

    def __float__(self):
        _host_read("float")
        return super().__float__()

    def __bool__(self):
        _host_read("bool")
        return super().__bool__()


class _Device:
    def __init__(self, index=None):
        self.id = _State.current if index is None else index

    def __enter__(self):
        self._prev, _State.current = _State.current, self.id
        return self

    def __exit__(self, *exc):
        _State.current = self._prev

    def use(self):
        _State.current = self.id

    def synchronize(self):
        _State.synced.append(self.id)


class _Event:
    def __init__(self, block=False, disable_timing=False):
        self.waited = 0

    def record(self, stream=None):
        pass

    def synchronize(self):
        _State.synced.append("event")


def _wrap(fn):
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, numpy.generic):  # CuPy returns 0-d device arrays where NumPy returns scalars
            out = numpy.asarray(out)
        return out.view(FakeCupyArray) if type(out) is numpy.ndarray else out

    return call


def _make_fake_cupy() -> types.ModuleType:
    cupy = types.ModuleType("cupy")
    cupy.ndarray = FakeCupyArray
    def asnumpy(a, stream=None):
        _host_read("asnumpy")
        return numpy.array(a, copy=True).view(numpy.ndarray)

    cupy.asnumpy = asnumpy

    def argsort(a, axis=-1):  # CuPy's signature: no ``kind`` (its sort is always stable)
        return numpy.argsort(a, axis=axis, kind="stable")

    cupy.argsort = _wrap(argsort)
    cupy.linalg = types.SimpleNamespace(norm=_wrap(numpy.linalg.norm))  # a 0-d device array, as CuPy's
    cupy.RawKernel = None  # never reached: NumPy-type arrays take the emulation path
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 2, getDevice=lambda: _State.current,
        getDeviceProperties=lambda i: {"name": b"Fake GPU"},
    )
    cupy.cuda = types.SimpleNamespace(Device=_Device, runtime=runtime, Event=_Event,
                                      get_current_stream=lambda: None)

    def __getattr__(name):
        attr = getattr(numpy, name)
        if callable(attr) and not isinstance(attr, (type, numpy.ufunc)):
            return _wrap(attr)
        return attr

    cupy.__getattr__ = __getattr__
    cupyx = types.ModuleType("cupyx")
    cupyx.empty_pinned = lambda shape, dtype: numpy.empty(shape, dtype)
    erf = numpy.vectorize(math.erf, otypes=[numpy.float64])
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
    cupyx.scipy.special.erf = _wrap(lambda x: erf(x).astype(numpy.result_type(x, numpy.float16)))
    return cupy, cupyx


@pytest.fixture
def fake_cupy(monkeypatch):
    """Import ember's CuPy backend against the fake module; restore every registry afterwards."""
    cupy, cupyx = _make_fake_cupy()
    by_type, by_device = dict(devmod._BACKEND_BY_ARRAY_TYPE), dict(devmod._BACKEND_BY_DEVICE_TYPE)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", cupyx.scipy.special)
    sys.modules.pop("ember.backends.cupy.backend", None)
    _State.current, _State.synced, _State.host_read_budget = 0, [], None
    try:
        yield importlib.import_module("ember.backends.cupy.backend")
    finally:
        sys.modules.pop("ember.backends.cupy.backend", None)
        for registry, saved in ((devmod._BACKEND_BY_ARRAY_TYPE, by_type), (devmod._BACKEND_BY_DEVICE_TYPE, by_device)):
            registry.clear()
            registry.update(saved)


def test_backend_registers_and_places_tensors_per_device(fake_cupy, tmp_path):
    assert em.cuda.is_available() and em.cuda.device_count() == 2
    assert em.cuda.get_device_name(0) == "Fake GPU"
    t = em.tensor([1.0, 2.0], device="cuda:1")
    assert isinstance(t.data, FakeCupyArray) and t.device == "cuda:1" and _State.current == 0
    z = em.zeros(2, 3, device="cuda:1")  # factories run through the per-device view
    assert z.device == "cuda:1" and em.ones(2, device="cuda").device == "cuda:0"
    assert t.cpu().device == "cpu" and isinstance(t.numpy(), numpy.ndarray)
    with em.cuda.device(1):
        assert em.cuda.current_device() == 1
    assert em.cuda.current_device() == 0
    with pytest.raises(RuntimeError, match="no such CUDA device"):
        em.tensor([1.0], device="cuda:5")
    path = tmp_path / "ckpt.npz"
    em.save({"w": t}, path)
    assert em.load(path, map_location="cuda:1")["w"].device == "cuda:1"
    assert em.load(path)["w"].device == "cpu"
    v = em.tensor([1.0, 2.0, 3.0], device="cuda", requires_grad=True)
    v[em.tensor([0, 0, 2], device="cuda")].sum().backward()  # CupyArrayOps.index_add
    assert v.grad.device == "cuda:0" and v.grad.tolist() == [2.0, 0.0, 1.0]
    devmod.get_backend("cuda:1").synchronize()
    assert _State.synced == [1]


def test_kernel_namespaces_are_the_cupy_modules(fake_cupy):
    from ember.backends.cupy import conv as cupy_conv
    from ember.backends.cupy import nn as cupy_nn
    from ember.backends.cupy import optim as cupy_optim
    from ember.backends.cupy import pool as cupy_pool

    b = fake_cupy.CUPY_BACKEND
    assert (b.conv, b.pool, b.nn, b.optim) == (cupy_conv, cupy_pool, cupy_nn, cupy_optim)
    assert devmod.backend_of(em.ones(1, device="cuda").data) is b


def test_pinned_dataloader_reuses_staging_buffers(fake_cupy):
    images = numpy.arange(6 * 4, dtype=numpy.float32).reshape(6, 4)
    ds = em.data.TensorDataset(images, numpy.arange(6))
    batches = list(em.data.DataLoader(ds, 2, device="cuda"))
    assert all(x.device == "cuda:0" and y.device == "cuda:0" for x, y in batches)
    numpy.testing.assert_array_equal(numpy.concatenate([x.numpy() for x, _ in batches]), images)
    assert _State.synced.count("event") == 2 * 1  # batch 3 of each column waits for its ring slot
    unpinned = list(em.data.DataLoader(ds, 3, device="cuda", pin_memory=False))
    numpy.testing.assert_array_equal(unpinned[1][1].numpy(), [3, 4, 5])


def _bn_net():
    nn = em.nn
    return nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3),
                         nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 5))


EXPECTED_KERNELS = {
    "SimpleConvNet": {"ember_im2col_rows", "ember_conv_bias_nchw", "ember_conv_gy_rows_bias", "ember_max_pool_fwd",
                      "ember_max_pool_bwd", "ember_relu_bwd", "ember_sce_fwd", "ember_sce_bwd", "ember_adam_update_many"},
    "TwoLayerNet": {"ember_sce_fwd", "ember_sce_bwd", "ember_adam_update_many"},
    "bn_net": {"ember_im2col_rows", "ember_col2im_rows", "ember_conv_bias_nchw", "ember_conv_gy_rows_bias", "ember_bn_stats",
               "ember_bn_apply", "ember_bn_grad_sums", "ember_bn_grad_x", "ember_avg_pool_fwd", "ember_avg_pool_bwd",
               "ember_sgd_update_many"},
}


@pytest.mark.parametrize("model_name", sorted(EXPECTED_KERNELS))
def test_training_step_on_fake_cuda_matches_cpu(fake_cupy, model_name, monkeypatch):
    from ember.backends.cupy import bn as cupy_bn
    from ember.backends.cupy import conv as cupy_conv
    from ember.backends.cupy import conv_gemm
    from ember.backends.cupy import nn as cupy_nn
    from ember.backends.cupy import optim as cupy_optim
    from ember.backends.cupy import pool as cupy_pool
    from ember.backends.cupy import kernel_spec as cupy_source

    launched = set()
    for module in (cupy_conv, conv_gemm, cupy_pool, cupy_nn, cupy_bn, cupy_optim):
        def counting(spec, dtype, total, args, _real=cupy_source.launch):
            launched.add(spec.name)
            return _real(spec, dtype, total, args)

        monkeypatch.setattr(module, "launch", counting)
    for module in (cupy_bn, conv_gemm):
        monkeypatch.setattr(module, "launch_blocks", lambda spec, dtype, blocks, args, _real=cupy_source.launch_blocks: (
            launched.add(spec.name), _real(spec, dtype, blocks, args)))
    rng = numpy.random.default_rng(0)
    if model_name == "SimpleConvNet":
        x = rng.normal(size=(4, 1, 12, 12)).astype(numpy.float32)
        make = lambda: em.models.SimpleConvNet(input_dim=(1, 12, 12), conv_param={
            "filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, hidden_size=8, output_size=5)
    elif model_name == "TwoLayerNet":
        x = rng.normal(size=(4, 6)).astype(numpy.float32)
        make = lambda: em.models.TwoLayerNet(6, 8, 5)
    else:
        x = rng.normal(size=(4, 2, 8, 8)).astype(numpy.float32)
        make = _bn_net
    t = numpy.array([0, 3, 1, 4])
    results = []
    for device in ("cpu", "cuda"):
        em.manual_seed(0)
        model = make().to(device)
        opt = (em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if model_name == "bn_net"
               else em.optim.Adam(model.parameters(), lr=1e-2))
        for _ in range(2):
            opt.zero_grad()
            loss = em.nn.functional.cross_entropy(model(em.tensor(x, device=device)), em.tensor(t, device=device))
            loss.backward()
            opt.step()
        assert {str(p.device) for p in model.parameters()} == {"cuda:0" if device == "cuda" else "cpu"}
        results.append([p.numpy().copy() for p in model.parameters()] + [loss.item()])
    for a, b in zip(*results):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    missing = EXPECTED_KERNELS[model_name] - launched
    assert not missing, f"these CUDA kernels were not used by the {model_name} step: {sorted(missing)}"

