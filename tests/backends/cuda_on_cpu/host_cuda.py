"""Compile ember's CUDA kernel sources as host C++ and launch them through ctypes.

The kernels are plain C over ``blockIdx``/``threadIdx``; a small prelude turns the CUDA
keywords into host C++, and each kernel gets an ``extern "C"`` launcher that runs the grid.
Blocks run one after another.  Inside a block, a kernel without ``__syncthreads`` runs its
threads one after another; a kernel with barriers runs each thread as a coroutine
(``ucontext``) that yields at ``__syncthreads``, and a barrier is released once every thread
of the block has reached it, so shared memory (``__shared__`` becomes a function-level
``static``, shared by the block) behaves as on a device.  A block whose threads disagree on
the number of barriers reports an error instead of hanging.

float16 storage is ``unsigned short`` as on the device; the two PTX conversion instructions
of the half prelude are replaced by host ``_Float16`` conversions (round to nearest even, as
``cvt.rn``).  One shared library per dtype holds every kernel; it is cached under the temp
folder by a hash of its source, so a changed template is recompiled and an unchanged one is
compiled once per machine.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy

CACHE = Path(tempfile.gettempdir()) / "ember-cuda-on-cpu"

_PRELUDE = r"""
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>
#include <ucontext.h>

struct ember_dim3 { unsigned int x, y, z; };
static ember_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, sizeof f); return f; }
static inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, sizeof d); return d; }
static inline float ember_half_to_float(unsigned short v) { _Float16 h; std::memcpy(&h, &v, 2); return (float)h; }
static inline unsigned short ember_float_to_half(float v) {
  _Float16 h = (_Float16)v; unsigned short u; std::memcpy(&u, &h, 2); return u;
}

namespace ember_host {
static ucontext_t scheduler;
static std::vector<ucontext_t> contexts;
static std::vector<char> stacks;
static std::vector<char> finished;
static unsigned current;
static const std::function<void()>* body;
static const size_t STACK = 64 * 1024;

static void thread_main() { (*body)(); finished[current] = 1; }

// Runs fn once per (block, thread); returns 0, or 1 when a block's threads disagree on barriers.
static int run(unsigned grid, unsigned block, bool cooperative, const std::function<void()>& fn) {
  gridDim = {grid, 1, 1}; blockDim = {block, 1, 1};
  if (!cooperative) {
    for (unsigned b = 0; b < grid; ++b) {
      blockIdx = {b, 0, 0};
      for (unsigned t = 0; t < block; ++t) { threadIdx = {t, 0, 0}; fn(); }
    }
    return 0;
  }
  body = &fn;
  contexts.assign(block, ucontext_t());
  stacks.assign((size_t)block * STACK, 0);
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx = {b, 0, 0};
    finished.assign(block, 0);
    for (unsigned t = 0; t < block; ++t) {
      getcontext(&contexts[t]);
      contexts[t].uc_stack.ss_sp = &stacks[(size_t)t * STACK];
      contexts[t].uc_stack.ss_size = STACK;
      contexts[t].uc_link = &scheduler;
      makecontext(&contexts[t], thread_main, 0);
    }
    for (;;) {  // one round: every live thread runs to its next barrier or to its end
      for (unsigned t = 0; t < block; ++t) {
        if (finished[t]) continue;
        current = t;
        threadIdx = {t, 0, 0};
        swapcontext(&scheduler, &contexts[t]);
      }
      unsigned done = 0;
      for (unsigned t = 0; t < block; ++t) done += finished[t];
      if (done == block) break;
      if (done != 0) return 1;  // some threads ended while others wait at a barrier
    }
  }
  return 0;
}
}  // namespace ember_host

static inline void __syncthreads() {
  swapcontext(&ember_host::contexts[ember_host::current], &ember_host::scheduler);
}
"""

_HALF_ASM = {
    'asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));': "f = ember_half_to_float(v);",
    'asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));': "h = ember_float_to_half(v);",
}

_CTYPE = {"long long": ctypes.c_longlong, "double": ctypes.c_double, "float": ctypes.c_float, "int": ctypes.c_int}


class KernelFailure(RuntimeError):
    """A compiled kernel reported an error (threads of a block disagreed on barriers)."""


def _params(source: str, fname: str) -> list[tuple[str, str]]:
    """``[(C type, name)]`` of ``fname``'s parameters, read from the kernel text."""
    m = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(fname) + r"\s*\(([^)]*)\)", source)
    if m is None:
        raise ValueError(f"host_cuda: no `extern \"C\" __global__ void {fname}(...)` in the kernel source")
    out = []
    for p in m.group(1).split(","):
        words = p.replace("*", " * ").split()
        out.append((" ".join(words[:-1]), words[-1]))
    return out


def _host_source(spec: Any, dtype: Any) -> str:
    src = spec.source(dtype)
    if numpy.dtype(dtype) == numpy.float16:
        for asm, host in _HALF_ASM.items():
            if asm not in src:
                raise ValueError(f"host_cuda: the float16 prelude no longer contains {asm!r}; update _HALF_ASM")
            src = src.replace(asm, host)
    return src


def _launcher(spec: Any, dtype: Any) -> str:
    fname = spec.function_name(dtype)
    params = _params(spec.source(dtype), fname)
    decl = ", ".join(f"{t} {n}" for t, n in params)
    names = ", ".join(n for _, n in params)
    coop = "true" if "__syncthreads" in spec.source(dtype) else "false"
    return (
        f'extern "C" int host_{fname}(unsigned grid, unsigned block, {decl}) {{\n'
        f"  return ember_host::run(grid, block, {coop}, [&] {{ {fname}({names}); }});\n}}\n"
    )


def translation_unit(specs: list, dtype: Any) -> str:
    """Host C++ with every kernel of ``specs`` for ``dtype`` and a launcher for each."""
    units = [
        f"namespace ember_k{i} {{\n{_host_source(s, dtype)}\n{_launcher(s, dtype)}}}\n" for i, s in enumerate(specs)
    ]
    return _PRELUDE + "".join(units)


def compiler() -> str | None:
    """The host C++ compiler, or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def build(source: str) -> Path:
    """The shared library for ``source``, compiled once and cached by the source's hash."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    lib = CACHE / f"kernels-{digest}.so"
    if lib.exists():
        return lib
    CACHE.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=CACHE, suffix=".cpp")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    out = tmp[:-4] + ".so"
    try:
        cmd = [compiler() or "g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-w", "-o", out, tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"host_cuda: compiling the kernels failed:\n{done.stderr[-4000:]}")
        os.replace(out, lib)  # atomic: parallel sessions never load a half-written library
    finally:
        for p in (tmp, out):
            if os.path.exists(p):
                os.remove(p)
    return lib


@functools.cache
def _library(specs: tuple, dtype: numpy.dtype) -> ctypes.CDLL:
    return ctypes.CDLL(str(build(translation_unit(list(specs), dtype))))


def _pointer_dtype(ctype_text: str, dtype: numpy.dtype) -> numpy.dtype:
    base = ctype_text.replace("const", "").replace("__restrict__", "").replace("*", "").split()
    base = " ".join(base)
    if base == "T":
        return dtype
    if base == "ACC":
        return numpy.dtype(numpy.float64) if dtype == numpy.float64 else numpy.dtype(numpy.float32)
    if base == "long long":
        return numpy.dtype(numpy.int64)
    if base == "double":  # device scalars (the CUDA-graph optimizer kernels)
        return numpy.dtype(numpy.float64)
    raise TypeError(f"host_cuda: no NumPy dtype for pointer type {ctype_text!r}")


@functools.cache
def kernel(specs: tuple, spec: Any, dtype: Any) -> Callable[..., None]:
    """A callable ``run(grid, block, *args)`` for ``spec``'s compiled ``dtype`` instantiation."""
    dtype = numpy.dtype(dtype)
    fname = spec.function_name(dtype)
    params = _params(spec.source(dtype), fname)
    fn = getattr(_library(specs, dtype), f"host_{fname}")
    argtypes = [ctypes.c_uint, ctypes.c_uint]
    for t, _ in params:
        argtypes.append(ctypes.c_void_p if "*" in t else _CTYPE[t])
    fn.argtypes, fn.restype = argtypes, ctypes.c_int

    def run(grid: int, block: int, *args: Any) -> None:
        if len(args) != len(params):
            raise TypeError(f"{fname}: expected {len(params)} arguments, got {len(args)}")
        values = []
        for (t, name), a in zip(params, args):
            if "*" in t:
                want = _pointer_dtype(t, dtype)
                if not isinstance(a, numpy.ndarray) or a.dtype != want or not a.flags.c_contiguous:
                    raise TypeError(f"{fname}: {name} must be a C-contiguous {want} array, got {a!r:.80}")
                values.append(a.ctypes.data)
            else:
                if t == "long long" and not isinstance(a, (int, numpy.integer)):
                    raise TypeError(f"{fname}: {name} is long long, got {type(a).__name__}")
                values.append(a)
        if fn(grid, block, *values) != 0:
            raise KernelFailure(f"{fname}: the threads of a block reached different numbers of __syncthreads")

    return run
