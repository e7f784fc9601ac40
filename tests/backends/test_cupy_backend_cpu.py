"""The CuPy backend's CPU-checkable parts: kernel index math, launch arithmetic, sources, errors, devices.

No GPU here.  The CUDA kernels' index formulas are checked through their NumPy
emulations (``KernelSpec.emulate``, which ``launch`` runs for NumPy arrays)
against the reference kernels on odd shapes, stride 2 and padding 1; the
sources are compiled with ``nvcc -ptx`` when nvcc is installed; device errors
run with CUDA hidden; device-mismatch paths are in ``test_cupy_devices_cpu.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess

import numpy
import pytest

import ember as em
from ember.backends.reference import conv as rc
from ember.backends.cupy import conv as cupy_conv
from ember.backends.cupy import nn as cupy_nn
from ember.backends.cupy import optim as cupy_optim
from ember.backends.cupy import pool as cupy_pool
from ember.backends.reference import nn as rn
from ember.backends.reference import optim as ro
from ember.backends.reference import pool as rp
from ember.backends.cupy.kernel_spec import (
    CTYPES,
    combined_source,
    ctype,
    launch_config,
    thread_indices,
)
from ember.backends.cupy.specs import all_specs

devmod = importlib.import_module("ember.backends.device")  # the module, not the `device` function

FLOATS = [numpy.float32, numpy.float64]
TOL = {numpy.float16: 4e-3, numpy.float32: 1e-5, numpy.float64: 1e-12}

# (N, C, H, W, kh, kw, stride, padding): odd sizes, rectangular kernels, stride 2, padding 1.
GEOMETRIES = [
    (2, 3, 7, 5, 3, 3, 2, 1),
    (1, 2, 5, 6, 2, 3, (2, 1), (1, 0)),
    (2, 1, 9, 7, 3, 2, (1, 3), (0, 1)),
    (1, 2, 8, 11, 3, 3, (3, 2), (1, 2)),
    (3, 1, 9, 9, 3, 3, 2, 1),
    (2, 2, 4, 4, 2, 2, 2, 0),
    (1, 1, 5, 5, 5, 5, 1, 2),
]
POOL_GEOMETRIES = [g for g in GEOMETRIES if g[7] in (0, 1) and not isinstance(g[6], tuple)]


def _close(a, b, dtype):
    numpy.testing.assert_allclose(numpy.asarray(a, float), numpy.asarray(b, float), rtol=TOL[dtype],
                                  atol=TOL[dtype])


# ------------------------------------------------------------ index math (emulated kernels)
@pytest.mark.parametrize("dtype", FLOATS + [numpy.float16])
@pytest.mark.parametrize("geo", GEOMETRIES)
def test_im2col_col2im_match_reference(geo, dtype, rng):
    n, c, h, w, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    col = cupy_conv.im2col(x, kh, kw, s, p)
    assert numpy.array_equal(col, rc.im2col(x, kh, kw, s, p))  # a pure gather: exact
    g = rng.normal(size=col.shape).astype(dtype)
    _close(cupy_conv.col2im(g, x.shape, kh, kw, s, p), rc.col2im(g, x.shape, kh, kw, s, p), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geo", POOL_GEOMETRIES)
def test_pooling_matches_reference(geo, dtype, rng):
    n, c, h, w, k, _, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    x[0, 0, 0, :2] = 5.0  # a tie inside one window: the first maximum must win
    y, am = cupy_pool.max_pool2d_forward(x, k, k, s, p)
    y_ref, am_ref = rp.max_pool2d_forward(x, k, k, s, p)
    assert numpy.array_equal(y, y_ref) and numpy.array_equal(am, am_ref)
    gy = rng.normal(size=y.shape).astype(dtype)
    _close(cupy_pool.max_pool2d_backward(gy, am, x.shape, k, k, s, p),
           rp.max_pool2d_backward(gy, am_ref, x.shape, k, k, s, p), dtype)
    _close(cupy_pool.avg_pool2d_forward(x, k, k, s, p), rp.avg_pool2d_forward(x, k, k, s, p), dtype)
    _close(cupy_pool.avg_pool2d_backward(gy, x.shape, k, k, s, p), rp.avg_pool2d_backward(gy, x.shape, k, k, s, p),
           dtype)


def test_max_pool_nan_and_all_neg_inf_windows_follow_reference():
    x = numpy.full((1, 1, 4, 4), -numpy.inf, dtype=numpy.float32)
    x[0, 0, 2, 3] = numpy.nan
    x[0, 0, 3, 2] = 7.0
    y, am = cupy_pool.max_pool2d_forward(x, 2, 2, 2, 0)
    y_ref, am_ref = rp.max_pool2d_forward(x, 2, 2, 2, 0)
    assert numpy.array_equal(y, y_ref, equal_nan=True) and numpy.array_equal(am, am_ref)


@pytest.mark.parametrize("dtype", FLOATS + [numpy.float16])
def test_nn_kernels_match_reference(dtype, rng):
    x = (rng.normal(size=(7, 5)) * 4).astype(dtype)
    t = rng.integers(0, 5, 7)
    ours, ref = cupy_nn.softmax_cross_entropy_forward(x, t), rn.softmax_cross_entropy_forward(x, t)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        _close(a, b, dtype)
    for g in (numpy.float64(0.25), rng.normal(size=7)):
        _close(cupy_nn.softmax_cross_entropy_backward(ours[1], t, g),
               rn.softmax_cross_entropy_backward(ref[1], t, g), dtype)
    y, gy = rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(3, 4)).astype(dtype)
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward"):
        a, b = getattr(cupy_nn, name)(y, gy), getattr(rn, name)(y, gy)
        assert a.dtype == b.dtype
        _close(a, b, dtype)
    a, b = cupy_nn.relu_forward(y), rn.relu_forward(y)
    assert a.dtype == b.dtype
    _close(a, b, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 5, 7)])
def test_batch_norm_kernels_match_reference(shape, dtype, rng):
    x = (rng.normal(size=shape) * 2 + 1).astype(dtype)
    w, b = rng.normal(size=shape[1]).astype(dtype), rng.normal(size=shape[1]).astype(dtype)
    ours, ref = cupy_nn.batch_norm_forward_train(x, w, b, 1e-5), rn.batch_norm_forward_train(x, w, b, 1e-5)
    for a, r in zip(ours, ref):
        _close(a, r, dtype)
    gy = rng.normal(size=shape).astype(dtype)
    for training in (True, False):
        ga = cupy_nn.batch_norm_backward(x, gy, ours[1], ours[3], w, training)
        gr = rn.batch_norm_backward(x, gy, ref[1], ref[3], w, training)
        for a, r in zip(ga, gr):
            assert a.dtype == r.dtype
            _close(a, r, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_optimizer_kernels_match_reference(dtype, rng):
    for kw in ({"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
               {"momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-2, "nesterov": True, "maximize": False},
               {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.0, "nesterov": False, "maximize": True}):
        w, g = rng.normal(size=(4, 5)).astype(dtype), rng.normal(size=(4, 5)).astype(dtype)
        buf = None if kw["momentum"] == 0 else rng.normal(size=(4, 5)).astype(dtype)
        for first in (True, False):
            a = [w.copy(), None if buf is None else buf.copy()]
            b = [w.copy(), None if buf is None else buf.copy()]
            cupy_optim.sgd_update(a[0], g, a[1], lr=0.1, first_step=first, **kw)
            ro.sgd_update(b[0], g, b[1], lr=0.1, first_step=first, **kw)
            _close(a[0], b[0], dtype)
    for wd, decoupled, amsgrad, beta1 in ((0.0, False, False, 0.9), (1e-2, True, True, 0.3), (1e-2, False, True, 0.9)):
        arrays = [rng.normal(size=(3, 7)).astype(dtype) for _ in range(3)]
        arrays += [numpy.abs(rng.normal(size=(3, 7))).astype(dtype) for _ in range(2)]
        a, b = [v.copy() for v in arrays], [v.copy() for v in arrays]
        for step in (1, 5):
            for fn, s in ((cupy_optim.adam_update, a), (ro.adam_update, b)):
                fn(s[0], s[1], s[2], s[3], s[4] if amsgrad else None, step=step, lr=1e-3, beta1=beta1, beta2=0.999,
                   eps=1e-8, weight_decay=wd, decoupled_weight_decay=decoupled, maximize=False)
        for u, v in zip(a, b):
            _close(u, v, dtype)


def test_non_float_and_odd_inputs_fall_back_to_reference(rng):
    x = rng.integers(0, 9, size=(1, 2, 5, 5))
    assert numpy.array_equal(cupy_conv.im2col(x, 3, 3, 2, 1), rc.im2col(x, 3, 3, 2, 1))
    y, gy = rng.normal(size=(3, 4)), rng.normal(size=(1, 4))  # broadcast: not the kernel's contract
    assert numpy.array_equal(cupy_nn.relu_backward(y, gy), rn.relu_backward(y, gy))
    assert cupy_nn.dropout_threshold is rn.dropout_threshold  # reference kernels reachable through the namespace


# ------------------------------------------------------------------ launch arithmetic
@pytest.mark.parametrize("total,expected", [(0, (1, 256)), (1, (1, 256)), (256, (1, 256)), (257, (2, 256)),
                                            (10**9, (1 << 16, 256))])
def test_launch_config(total, expected):
    assert launch_config(total) == expected


@pytest.mark.parametrize("total,block,max_blocks", [(1, 4, 3), (11, 4, 3), (12, 4, 3), (100, 4, 3), (7, 8, 5)])
def test_grid_stride_loop_covers_every_element_once(total, block, max_blocks):
    blocks, threads = launch_config(total, block, max_blocks)
    seen = [i for t in range(blocks * threads) for i in thread_indices(t, total, blocks, threads)]
    assert sorted(seen) == list(range(total))


def test_launch_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="launch_config"):
        launch_config(-1)


# ---------------------------------------------------------------------- dtype policy, sources
def test_ctype_map_and_rejection():
    assert ctype(numpy.float16) == ("f16", "unsigned short", "float")
    assert ctype("float32")[1:] == ("float", "float") and ctype(numpy.float64)[1:] == ("double", "double")
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        ctype(numpy.int32)


def test_sources_are_self_contained_and_named():
    specs = all_specs()
    assert len({s.name for s in specs}) == len(specs) >= 15
    for spec in specs:
        for dtype in CTYPES:
            src = spec.source(dtype)
            assert f'extern "C" __global__ void {spec.function_name(dtype)}(' in src
            assert "#include" not in src and "INFINITY" not in src and "${" not in src


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed")
@pytest.mark.parametrize("dtype", sorted(CTYPES, key=str))
def test_every_kernel_compiles_with_nvcc(dtype, tmp_path):
    src = tmp_path / "kernels.cu"
    src.write_text(combined_source(all_specs(), dtype))
    out = tmp_path / "kernels.ptx"
    done = subprocess.run(["nvcc", "-ptx", "-arch=sm_90", str(src), "-o", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ptx = out.read_text()
    for spec in all_specs():
        assert f".entry {spec.function_name(dtype)}(" in ptx


# ----------------------------------------------------------------- no CUDA: clear errors
@pytest.fixture
def no_cuda(monkeypatch):
    """Hide any CUDA backend and make CUDA unavailable (as on a machine without CuPy or a GPU)."""
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    monkeypatch.setattr("ember.cuda.cuda_available", lambda: False)
    monkeypatch.delitem(devmod._BACKEND_BY_DEVICE_TYPE, "cuda", raising=False)


def _assert_install_hint(excinfo):
    msg = str(excinfo.value)
    assert "cuda" in msg and 'pip install -e ".[gpu]"' in msg and "cupy-cuda12x" in msg, msg


@pytest.mark.parametrize("make", [
    lambda: em.tensor([1.0, 2.0], device="cuda"),
    lambda: em.zeros(2, 3, device="cuda:0"),
    lambda: em.randn(2, device="cuda"),
    lambda: em.tensor([1.0]).cuda(),
    lambda: em.tensor([1.0], requires_grad=True).to("cuda"),
    lambda: em.models.TwoLayerNet(4, 3, 2).to("cuda"),
    lambda: em.nn.Linear(2, 2).cuda(),
    lambda: em.cuda.current_device(),
], ids=["tensor", "zeros", "randn", "Tensor.cuda", "Tensor.to", "Module.to", "Module.cuda", "current_device"])
def test_asking_for_cuda_without_it_says_how_to_install(no_cuda, make):
    with pytest.raises(RuntimeError) as excinfo:
        make()
    _assert_install_hint(excinfo)


def test_load_and_dataloader_without_cuda(no_cuda, tmp_path):
    path = tmp_path / "ckpt.npz"
    em.save({"w": em.ones(2)}, path)
    with pytest.raises(RuntimeError) as excinfo:
        em.load(path, map_location="cuda")
    _assert_install_hint(excinfo)
    loader = em.data.DataLoader(em.data.TensorDataset(numpy.zeros((4, 2), numpy.float32)), 2, device="cuda")
    with pytest.raises(RuntimeError) as excinfo:
        next(iter(loader))
    _assert_install_hint(excinfo)
    assert em.cuda.is_available() is False and em.cuda.device_count() == 0


def test_message_distinguishes_missing_cupy_from_missing_gpu(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "cupy" else real(name, *a))
    assert "sees no CUDA device" in devmod.cuda_unavailable_message("cuda:0")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real(name, *a))
    assert "CuPy is not installed" in devmod.cuda_unavailable_message("cuda:0")


def test_dataloader_rejects_bad_device_arguments():
    ds = em.data.TensorDataset(numpy.zeros((4, 2), numpy.float32))
    with pytest.raises(ValueError, match="device"):
        em.data.DataLoader(ds, 2, device="tpu")
    with pytest.raises(ValueError, match="pin_memory"):
        em.data.DataLoader(ds, 2, pin_memory="yes")
    batch = next(iter(em.data.DataLoader(ds, 2, device="cpu", pin_memory=True)))  # ignored on the cpu
    assert batch[0].device == "cpu"


# ------------------------------------------------ kernel signatures vs the arguments passed
def _c_params(spec) -> list[tuple[str, str]]:
    """``(C type, name)`` of each parameter of the kernel's float32 instantiation."""
    src = spec.source("float32")
    head = src[src.index(spec.function_name("float32") + "(") :]
    params = head[head.index("(") + 1 : head.index(")")]
    out = []
    for p in params.split(","):
        words = p.replace("*", " * ").replace("__restrict__", "").split()
        out.append(("pointer" if "*" in words else " ".join(w for w in words[:-1] if w != "const"), words[-1]))
    return out


def test_kernel_arguments_match_c_signatures(monkeypatch, rng):
    """Every launch passes arrays for pointers, ints for ``long long`` and floats for ``double``.

    CuPy maps Python ``int``/``float``/``bool`` to ``long long``/``double``/``bool`` without
    checking the kernel's signature, so a wrong Python type would shift every later argument.
    """
    import inspect

    from ember.backends.cupy import bn as cupy_bn

    from ember.backends.cupy import kernel_spec as cupy_source

    seen = {}

    def recording(real):
        def launch(spec, dtype, count, args):
            seen[spec.name] = (spec, args)
            return real(spec, dtype, count, args)

        return launch

    from ember.backends.cupy import conv_gemm
    from ember.backends.cupy import philox as cupy_philox
    from ember.backends.reference.philox import new_state

    from ember.backends.cupy import optim_captured

    for module in (cupy_conv, conv_gemm, cupy_pool, cupy_nn, cupy_bn, cupy_optim, cupy_philox, optim_captured):
        for name in ("launch", "launch_blocks"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, recording(getattr(cupy_source, name)))
    x = rng.normal(size=(2, 3, 6, 5)).astype(numpy.float32)
    col = cupy_conv.im2col(x, 3, 3, 2, 1)
    cupy_conv.col2im(col, x.shape, 3, 3, 2, 1)
    W = x[:, :, :3, :3].copy()
    y = cupy_conv.conv2d_forward(x, W, W[:, 0, 0, 0].copy(), (2, 1), (1, 0), xp=numpy)
    cupy_conv.conv2d_backward(x, W, y, (2, 1), (1, 0), (True, True, True), xp=numpy)
    cupy_conv.conv2d_backward(x, W, y, (2, 1), (1, 0), (True, True, False), xp=numpy, y=y)
    y, am = cupy_pool.max_pool2d_forward(x, 2, 2, 2, 0)
    cupy_pool.max_pool2d_backward(y, am, x.shape, 2, 2, 2, 0)
    cupy_pool.avg_pool2d_backward(cupy_pool.avg_pool2d_forward(x, 2, 2, 2, 0), x.shape, 2, 2, 2, 0)
    _, p, _ = cupy_nn.softmax_cross_entropy_forward(x[:, 0, 0], numpy.array([0, 4]))
    cupy_nn.softmax_cross_entropy_backward(p, numpy.array([0, 4]), 0.5)
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward"):
        getattr(cupy_nn, name)(x, x)
    _, mean, _, inv_std = cupy_nn.batch_norm_forward_train(x, None, None, 1e-5)
    cupy_nn.batch_norm_backward(x, x, mean, inv_std, None, True)
    w = x.reshape(-1).copy()
    cupy_optim.sgd_update(w, w.copy(), w.copy(), lr=0.1, momentum=0.9, dampening=0, weight_decay=0,
                          nesterov=False, maximize=False, first_step=False)
    cupy_optim.adam_update(w, w.copy(), w.copy(), w.copy() ** 2, None, step=1, lr=1e-3, beta1=0.9, beta2=0.999,
                           eps=1e-8, weight_decay=0, decoupled_weight_decay=False, maximize=False)
    cupy_optim.sgd_update_many([w, w[:3].copy()], [w.copy(), w[:3].copy()], [w.copy(), w[:3].copy()], lr=0.1,
                               momentum=0.9, dampening=0, weight_decay=0, nesterov=False, maximize=False,
                               first_step=False)
    cupy_optim.adam_update_many([w], [w.copy()], [w.copy()], [w.copy() ** 2], [None], step=1, lr=1e-3, beta1=0.9,
                                beta2=0.999, eps=1e-8, weight_decay=0, decoupled_weight_decay=False, maximize=False)
    optim_captured.sgd_update_many([w], [w.copy()], [w.copy()], numpy.array([0.1, 0.0, 1.0, 0.0]), momentum=0.9,
                                   dampening=0, weight_decay=0, nesterov=False, maximize=False, xp=numpy)
    optim_captured.adam_update_many([w], [w.copy()], [w.copy()], [w.copy() ** 2], [None], numpy.zeros(7), beta1=0.9,
                                    beta2=0.999, eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                                    maximize=False, xp=numpy)
    cupy_philox.dropout_mask((3, 5), 0.3, new_state(1), numpy.float32)
    assert set(seen) == {s.name for s in all_specs()}
    python_type = {"pointer": numpy.ndarray, "long long": int, "double": float}
    for spec, args in seen.values():
        params = _c_params(spec)
        grid_stride = params[-1][1] == "total"
        if grid_stride:
            params = params[:-1]  # appended by launch()
        emulated = list(inspect.signature(spec.emulate).parameters)[1:]
        assert [n for _, n in params] == emulated, spec.name
        assert len(args) == len(params), spec.name
        for (ctype_, pname), value in zip(params, args):
            ok = isinstance(value, numpy.ndarray) if ctype_ == "pointer" else type(value) is python_type[ctype_]
            assert ok, f"{spec.name}: {pname} is {ctype_}, got {type(value)}"
