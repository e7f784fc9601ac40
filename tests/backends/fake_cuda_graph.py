"""CUDA-graph capture for the fake ``cupy`` module: record what a step launches, replay it on ``launch()``.

With ``install(monkeypatch)`` the fake gains ``cuda.Stream`` (``begin_capture``
/ ``end_capture`` -> a graph with ``launch``), ``cuda.MemoryPool``,
``cuda.using_allocator`` and ``get_current_stream``. While a stream captures,
every operation on fake device arrays (ufuncs, reductions, item assignment,
copying methods, ``cupy.*`` functions, ember's kernel launches, GEMMs of the
fake libcublas) runs once, so the step's Python sees real values, AND is
recorded with its operands: arrays by reference, Python scalars by value, as a
real CUDA graph bakes kernel arguments in. ``end_capture`` then restores every
array that existed before the capture, so capturing performs no step, as on a
GPU, and each ``launch`` re-runs the recording over the same buffers.

Memory the capture allocated from the graph's pool may be reused by a later
allocation of the same capture on a GPU, so the kernel that wrote it as scratch
overwrites it at every replay: a host write into such an array after the
capture (a refresh hook, a deferred upload) raises ``ScratchWriteError`` here.
Arrays allocated under another allocator (ember's host-filled pool) are exempt.

What CuPy refuses during capture raises here too: host reads (``.get()``,
``float()``, ...), host->device copies (``cupy.asarray`` of host data,
``a[...] = host``, ``.set``, and the pointer table CuPy uploads to join more
than eight small arrays), synchronisation, and cuBLAS through CuPy
(``cupy.matmul`` / ``@`` on float arrays). The libcublas ember calls instead is
``fake_libcublas.FakeCublas``.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy

fake = importlib.import_module("test_cupy_fake_module_cpu")
FakeCupyArray = fake.FakeCupyArray


class ScratchWriteError(AssertionError):
    """A host write into memory a captured graph may use as scratch (see the module docstring)."""


class Capture:
    """One capture in progress: the recorded thunks and the pre-capture arrays to restore."""

    def __init__(self, stream):
        self.stream, self.thunks, self.snapshots, self.born, self.keep = stream, [], {}, set(), []
        self.pools_used: list = []
        self.scratch_pool = _Cap.allocator_pool  # the allocator when the capture began: the graph's pool


class _Cap:
    active: Capture | None = None
    depth = 0  # > 0 inside a recorded operation: what it does inside is part of it
    allocator_pool = None
    stream = None
    launches = 0
    scratch: dict = {}  # noqa: RUF012 - id -> array the graph's pool made in a finished capture (reset by install)


def _root(a):
    while isinstance(getattr(a, "base", None), numpy.ndarray):
        a = a.base
    return a


def _plain(v):
    return v.view(numpy.ndarray) if isinstance(v, FakeCupyArray) else v


def _arrays(values):
    for v in values:
        if isinstance(v, numpy.ndarray):
            yield v
            yield from _arrays(getattr(v, "rows", ()))  # a multi-tensor kernel's pointer table
        elif isinstance(v, (list, tuple)):
            yield from _arrays(v)


def _recording() -> Capture | None:
    return _Cap.active if _Cap.active is not None and _Cap.depth == 0 else None


def _note_new(cap: Capture, arrays) -> None:
    for a in arrays:
        r = _root(a)
        cap.born.add(id(r))
        cap.keep.append(r)
        cap.pools_used.append(_Cap.allocator_pool)


def _note_written(cap: Capture, arrays) -> None:
    """Save the contents of each pre-capture array about to be written (restored at end_capture)."""
    for a in arrays:
        r = _root(a)
        if id(r) not in cap.born and id(r) not in cap.snapshots:
            cap.snapshots[id(r)] = (r, numpy.array(r, copy=True))


def _quiet(fn):
    """Run ``fn`` without recording what it does inside (a recorded op replays as one unit)."""
    def run(*args, **kwargs):
        _Cap.depth += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _Cap.depth -= 1
    return run


def _check_host_write(a) -> None:
    """Raise for a write outside any capture and launch into an array a capture made from the graph's pool."""
    if _Cap.active is None and _Cap.depth == 0 and id(_root(a)) in _Cap.scratch:
        raise ScratchWriteError(
            f"host write into an array of shape {numpy.shape(a)} made in a capture from the graph's pool: on a GPU "
            "that memory may be scratch of an earlier kernel of the graph, which overwrites it at every replay")


def _refuse(what: str) -> None:
    raise RuntimeError(f"the current stream is capturing, so {what} are disallowed")


# ------------------------------------------------------------------ array hooks
def _array_ufunc(self, ufunc, method, *inputs, out=None, **kwargs):
    cap = _recording()
    if cap is not None and ufunc is numpy.matmul and any(
            isinstance(i, numpy.ndarray) and i.dtype.kind == "f" for i in inputs):
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    if cap is not None and any(type(i) is numpy.ndarray for i in inputs):  # CuPy copies a host operand over
        _refuse("H2D transfers")
    plain_in = tuple(_plain(i) for i in inputs)
    if out is not None:
        kwargs["out"] = tuple(_plain(o) for o in out)
    if cap is not None and method == "at":
        _note_written(cap, [inputs[0]])
    result = _quiet(getattr(ufunc, method))(*plain_in, **kwargs)
    if out is not None:
        outs = out
        ret = out[0] if len(out) == 1 else out
    else:
        many = isinstance(result, tuple)
        outs = tuple(numpy.asarray(r).view(FakeCupyArray) for r in (result if many else (result,)))
        for o in outs:
            o._dev = getattr(self, "_dev", 0)
        ret = outs if many else outs[0]
        if result is None:
            outs, ret = (), None
    if cap is not None:
        if out is not None:
            _note_written(cap, outs)
        else:
            _note_new(cap, outs)
        kw = {k: v for k, v in kwargs.items() if k != "out"}
        targets = tuple(_plain(o) for o in outs)
        if method == "at":
            cap.thunks.append(lambda: getattr(ufunc, method)(*plain_in, **kw))
        else:
            cap.thunks.append(lambda: getattr(ufunc, method)(*plain_in, out=targets, **kw))
    return ret


def _setitem(self, key, value):
    cap = _recording()
    if cap is not None and isinstance(value, (list, numpy.ndarray)) and not isinstance(value, FakeCupyArray) \
            and numpy.ndim(value) > 0:
        _refuse("H2D transfers")
    _check_host_write(self)
    plain_key = tuple(_plain(k) for k in key) if isinstance(key, tuple) else _plain(key)
    target, v = self.view(numpy.ndarray), _plain(value)
    if cap is not None:
        _note_written(cap, [self])
        cap.thunks.append(lambda: target.__setitem__(plain_key, v))
    _quiet(target.__setitem__)(plain_key, v)


def _copying(name):
    """An ndarray method that may return new memory: record its recomputation when it does."""
    base = getattr(numpy.ndarray, name)

    def method(self, *args, **kwargs):
        out = _quiet(base)(self, *args, **kwargs)
        cap = _recording()
        if cap is not None and isinstance(out, numpy.ndarray) and not numpy.may_share_memory(out, self):
            if not isinstance(out, FakeCupyArray):
                out = out.view(FakeCupyArray)
            _note_new(cap, [out])
            src, target = self, out.view(numpy.ndarray)
            args_p = tuple(_plain(a) for a in args)
            cap.thunks.append(lambda: numpy.copyto(target, base(src.view(numpy.ndarray), *args_p, **kwargs),
                                                   casting="unsafe"))
        return out

    return method


def _in_place(name):
    base = getattr(numpy.ndarray, name)

    def method(self, *args, **kwargs):
        cap = _recording()
        _check_host_write(self)
        if cap is not None:
            _note_written(cap, [self])
            target = self.view(numpy.ndarray)
            cap.thunks.append(lambda: base(target, *args, **kwargs))
        return _quiet(base)(self, *args, **kwargs)

    return method


def _set(self, host, stream=None):
    if _recording() is not None:
        _refuse("H2D transfers")
    _check_host_write(self)
    self.view(numpy.ndarray)[...] = host


def _host_read(what, _real=fake._host_read):
    if _recording() is not None:
        raise RuntimeError(f"the current stream is capturing: a device->host read ({what}) is not allowed")
    _real(what)


_H2D_FUNCTIONS = {"asarray", "array", "ascontiguousarray", "asfortranarray"}
_JOIN_FUNCTIONS = {"concatenate", "concat", "stack", "hstack", "vstack"}


def _uploads_a_pointer_table(arrays) -> bool:
    """CuPy's rule for joining in one kernel, which uploads the arrays' pointers from the host.

    More than 8 arrays, all of one dtype, under 2 MiB each on average
    (``_concatenate`` in cupy/_core/_routines_manipulation.pyx).
    """
    arrays = list(arrays)
    if len(arrays) <= 8 or len({numpy.dtype(a.dtype) for a in arrays}) != 1:
        return False
    return sum(a.nbytes for a in arrays) < (2 << 20) * len(arrays)


def _wrap_function(name, fn):
    def call(*args, **kwargs):
        cap = _recording()
        arrays = list(_arrays(list(args) + list(kwargs.values())))
        if cap is not None and name in _H2D_FUNCTIONS and not any(isinstance(a, FakeCupyArray) for a in arrays):
            _refuse("H2D transfers")
        if cap is not None and name in _JOIN_FUNCTIONS and args and _uploads_a_pointer_table(args[0]):
            _refuse("H2D transfers")
        if cap is not None:
            _note_written(cap, [a for a in arrays if isinstance(a, FakeCupyArray)])
        out = _quiet(fn)(*args, **kwargs)
        if isinstance(out, numpy.generic):  # CuPy returns 0-d device arrays where NumPy returns scalars
            out = numpy.asarray(out)
        if type(out) is numpy.ndarray:
            out = out.view(FakeCupyArray)
        if cap is not None:
            fresh = isinstance(out, numpy.ndarray) and not any(numpy.may_share_memory(out, a) for a in arrays)
            if fresh:
                _note_new(cap, [out])
                if not name.startswith("empty"):
                    target = out.view(numpy.ndarray)
                    cap.thunks.append(lambda: numpy.copyto(target, fn(*args, **kwargs), casting="unsafe"))
            elif out is None or "out" in kwargs:
                cap.thunks.append(lambda: fn(*args, **kwargs))
        return out

    return call


def install(monkeypatch, cupy=None):
    """Give the fake ``cupy`` (the one in ``sys.modules``) streams, graphs, pools and capture recording."""
    from fake_cuda_driver import NULL_STREAM, MemoryPool, Stream, using_allocator

    cupy = cupy or sys.modules["cupy"]
    _Cap.active, _Cap.depth, _Cap.allocator_pool, _Cap.stream, _Cap.launches = None, 0, None, None, 0
    _Cap.scratch = {}
    cuda = cupy.cuda
    monkeypatch.setattr(cuda, "Stream", Stream, raising=False)
    monkeypatch.setattr(cuda, "MemoryPool", MemoryPool, raising=False)
    monkeypatch.setattr(cuda, "using_allocator", using_allocator, raising=False)
    monkeypatch.setattr(cuda, "get_current_stream", lambda: _Cap.stream or NULL_STREAM, raising=False)
    monkeypatch.setattr(FakeCupyArray, "__array_ufunc__", _array_ufunc, raising=False)
    monkeypatch.setattr(FakeCupyArray, "__setitem__", _setitem, raising=False)
    monkeypatch.setattr(FakeCupyArray, "set", _set)
    for name in ("astype", "copy", "reshape", "ravel", "flatten", "argmax", "argmin", "take", "repeat"):
        monkeypatch.setattr(FakeCupyArray, name, _copying(name), raising=False)
    monkeypatch.setattr(FakeCupyArray, "__getitem__", _copying_getitem(FakeCupyArray.__getitem__))
    for name in ("fill", "sort", "put"):
        monkeypatch.setattr(FakeCupyArray, name, _in_place(name), raising=False)
    monkeypatch.setattr(fake, "_host_read", _host_read)

    def __getattr__(name):
        attr = getattr(numpy, name)
        if callable(attr) and not isinstance(attr, (type, numpy.ufunc)):
            return _wrap_function(name, attr)
        return attr

    monkeypatch.setattr(cupy, "__getattr__", __getattr__)
    monkeypatch.setattr(cupy, "linalg", types.SimpleNamespace(norm=_wrap_function("norm", numpy.linalg.norm)))
    from fake_libcublas import FakeCublas

    from ember.backends.cupy import cublas

    lib = FakeCublas()
    cublas.reset()
    cublas._LIB.append(lib)
    monkeypatch.setattr(cublas, "_LIB", cublas._LIB)
    _record_kernel_launches(monkeypatch)
    return lib


def _copying_getitem(base):
    def getitem(self, key):
        cap = _recording()
        keys = key if isinstance(key, tuple) else (key,)
        if cap is not None and any(type(k) is numpy.ndarray or isinstance(k, list) for k in keys):
            _refuse("H2D transfers")  # CuPy uploads a host index array
        out = _quiet(base)(self, key)
        if cap is not None and isinstance(out, numpy.ndarray) and not numpy.may_share_memory(out, self):
            _note_new(cap, [out])
            src, target = self.view(numpy.ndarray), out.view(numpy.ndarray)
            plain_key = tuple(_plain(k) for k in key) if isinstance(key, tuple) else _plain(key)
            cap.thunks.append(lambda: numpy.copyto(target, src[plain_key]))
        return out

    return getitem


def _record_kernel_launches(monkeypatch):
    """Wrap ``launch``/``launch_blocks`` wherever ember's CuPy modules imported them."""
    from ember.backends.cupy import kernel_spec

    for real in (kernel_spec.launch, kernel_spec.launch_blocks):
        def recorded(spec, dtype, total, args, _real=real):
            cap = _recording()
            if cap is not None:
                _note_written(cap, [a for a in _arrays(args) if isinstance(a, FakeCupyArray)])
                cap.thunks.append(lambda: _real(spec, dtype, total, args))
                with numpy.errstate(all="ignore"):  # device scalars are filled only before a launch
                    return _quiet(_real)(spec, dtype, total, args)
            return _quiet(_real)(spec, dtype, total, args)

        for name, module in list(sys.modules.items()):
            if name.startswith("ember.backends.cupy") and getattr(module, real.__name__, None) is real:
                monkeypatch.setattr(module, real.__name__, recorded)


def last_capture() -> Capture:
    """The capture that ended last (for tests on what it recorded and which pool it used)."""
    return _Cap.last


def launches() -> int:
    return _Cap.launches

