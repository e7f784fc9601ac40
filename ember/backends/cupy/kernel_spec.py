"""CUDA kernel sources as templates, their launch arithmetic, and the launcher.

Each GPU kernel is a ``KernelSpec``: a CUDA C template (instantiated per dtype
through a dtype -> C type map) and a NumPy *emulation* with the same parameter
names that evaluates the same index formulas vectorised over the thread index.
``launch`` runs the compiled kernel on CuPy arrays and the emulation on NumPy
arrays, so the wrappers in the ``conv``/``pool``/``nn``/``bn``/``optim`` modules of this package
and their index math are tested on a machine without a GPU; only compilation
(checked with ``nvcc -ptx``) and execution on a device remain GPU-only.

Design choices:

* One thread per output element in a grid-stride loop (``launch``): any total
  size works with a capped grid, and consecutive threads write consecutive
  addresses.  Per-channel reductions (batch norm) use one block per channel
  and a shared-memory tree instead (``launch_blocks``): deterministic, no atomics.
* float16 is stored as ``unsigned short`` and converted with ``cvt`` PTX
  instructions, so no kernel needs ``cuda_fp16.h`` (NVRTC wheels lack it);
  all arithmetic accumulates in float (float16/float32) or double (float64).
* Every integer argument is ``long long``: CuPy passes Python ints as 64-bit
  values, so there is no silent truncation and no ``numpy.int32`` wrapping.
* Kernels are compiled lazily and memoized per (kernel, dtype); CuPy caches the
  binary per device, so a kernel is built once per process, not per call.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy

BLOCK = 256
MAX_BLOCKS = 1 << 16  # grid-stride loops cover any total with at most this many blocks
# The cap for kernels that split their index by division once per thread and walk on by carries
# (im2col_rows, the gathers): about two resident waves on an H100/H200 (132 SMs, 8 blocks of 256 each),
# so each thread's divisions are spread over many elements.
WALK_BLOCKS = 2048

# dtype -> (suffix, storage C type, accumulator C type)
CTYPES = {
    numpy.dtype("float16"): ("f16", "unsigned short", "float"),
    numpy.dtype("float32"): ("f32", "float", "float"),
    numpy.dtype("float64"): ("f64", "double", "double"),
}

_PRELUDE_PLAIN = """
typedef ${T} T;
typedef ${ACC} ACC;
__device__ __forceinline__ ACC to_acc(T v) { return (ACC)v; }
__device__ __forceinline__ T from_acc(ACC v) { return (T)v; }
__device__ __forceinline__ bool is_nan(ACC v) { return v != v; }
__device__ __forceinline__ ACC acc_exp(ACC v) { return ${EXP}(v); }
__device__ __forceinline__ ACC acc_log(ACC v) { return ${LOG}(v); }
__device__ __forceinline__ ACC acc_sqrt(ACC v) { return ${SQRT}(v); }
"""

_PRELUDE_HALF = """
typedef unsigned short T;
typedef float ACC;
__device__ __forceinline__ ACC to_acc(T v) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v)); return f;
}
__device__ __forceinline__ T from_acc(ACC v) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); return h;
}
__device__ __forceinline__ bool is_nan(ACC v) { return v != v; }
__device__ __forceinline__ ACC acc_exp(ACC v) { return expf(v); }
__device__ __forceinline__ ACC acc_log(ACC v) { return logf(v); }
__device__ __forceinline__ ACC acc_sqrt(ACC v) { return sqrtf(v); }
"""

_MATH = {
    "float": {"EXP": "expf", "LOG": "logf", "SQRT": "sqrtf"},
    "double": {"EXP": "exp", "LOG": "log", "SQRT": "sqrt"},
}

# Negative infinity without <math_constants.h> (NVRTC has no INFINITY macro).
_PRELUDE_COMMON = """
#define NEG_INF_F __int_as_float(0xff800000)
#define NEG_INF_D __longlong_as_double(0xfff0000000000000LL)
"""


# The loop of a gather kernel (col2im, the pooling backwards): one thread per
# input pixel ``i`` of plane ``p`` sums @TERM@ (a statement adding to ``acc``)
# over every window ``(ky, kx, oy, ox)`` that covers it, then runs @STORE@.
# No atomics and a fixed summation order (ky, then kx, ascending): deterministic.
# These loops were bound by integer division, so: the digits (p, y, x) of ``i`` are
# split by division once per thread and advanced by the grid step's own digits with
# carries; the windows covering a row are found with one division (ky = (y + PH) % SH,
# then every SH-th tap, oy falling by one each), and likewise for columns. Window
# arithmetic runs in 32-bit ints (sizes, strides and positions are far below 2**31),
# and so does ``i`` whenever the output's size leaves room for the grid-stride loop's
# last step. Terms index memory with the long long parameters.
_GATHER_ONE = """
    @I@ i = (@I@)blockIdx.x * blockDim.x + threadIdx.x;
    const @I@ step = (@I@)gridDim.x * blockDim.x;
    if (i < (@I@)total) {
      const @I@ step_q = step / W32, step_p = step_q / H32;
      const int d_x = (int)(step - step_q * W32), d_y = (int)(step_q - step_p * H32);
      const @I@ q = i / W32;
      @I@ p = q / H32;
      int x = (int)(i - q * W32), y = (int)(q - p * H32);
      for (; i < (@I@)total; i += step) {
        ACC acc = 0;
        const int ty = y + PH32, tx = x + PW32;
        const int oy_top = ty / SH32, ox_top = tx / SW32;
        const int ky_first = ty - oy_top * SH32, kx_first = tx - ox_top * SW32;
        for (int ky = ky_first, oy = oy_top; ky < KH32 && oy >= 0; ky += SH32, --oy) {
          if (oy >= OH32) continue;
          for (int kx = kx_first, ox = ox_top; kx < KW32 && ox >= 0; kx += SW32, --ox) {
            if (ox >= OW32) continue;
            @TERM@
          }
        }
        @STORE@
        x += d_x;         int carry = x >= W32; if (carry) x -= W32;
        y += d_y + carry; carry = y >= H32;     if (carry) y -= H32;
        p += step_p + carry;
      }
    }
"""
GATHER_LOOP = (
    """
  const int W32 = (int)W, H32 = (int)H, KH32 = (int)KH, KW32 = (int)KW, SH32 = (int)SH, SW32 = (int)SW;
  const int PH32 = (int)PH, PW32 = (int)PW, OH32 = (int)OH, OW32 = (int)OW;
  if (total <= 2147483647LL - (long long)gridDim.x * blockDim.x) {"""
    + _GATHER_ONE.replace("@I@", "int")
    + "  } else {"
    + _GATHER_ONE.replace("@I@", "long long")
    + "  }\n}\n"
)


def gather_body(signature: str, term: str, store: str) -> str:
    """A gather kernel's text: ``signature`` (up to the opening brace), ``GATHER_LOOP`` with ``term`` and ``store``."""
    return signature + GATHER_LOOP.replace("@TERM@", term).replace("@STORE@", store)


def emulate_gather(total: int, dtype: Any, geometry: tuple, term: Callable[..., tuple]) -> Any:
    """NumPy evaluation of ``GATHER_LOOP`` vectorised over ``i``: the accumulator, in the kernel's ACC type.

    ``geometry`` is ``(H, W, KH, KW, SH, SW, PH, PW, OH, OW)``; ``term(p, ky, kx, oy, ox, ok)``
    returns ``(values, ok)``, the summands of the windows where ``ok`` holds (indices
    are only valid there).
    """
    H, W, KH, KW, SH, SW, PH, PW, OH, OW = geometry
    i = numpy.arange(total, dtype=numpy.int64)
    x, y, p = i % W, (i // W) % H, i // (W * H)
    acc_dtype = numpy.float64 if dtype == numpy.float64 else numpy.float32
    acc = numpy.zeros(total, dtype=acc_dtype)
    for ky in range(KH):
        t = y + PH - ky
        oy = t // SH
        ok_y = (t >= 0) & (t % SH == 0) & (oy < OH)
        for kx in range(KW):
            u = x + PW - kx
            ox = u // SW
            ok = ok_y & (u >= 0) & (u % SW == 0) & (ox < OW)
            values, ok = term(p, ky, kx, oy, ox, ok)
            acc += numpy.where(ok, values.astype(acc_dtype), 0)
    return acc


@dataclass(frozen=True)
class KernelSpec:
    """A CUDA kernel: its name, its C body template and its NumPy emulation.

    ``body`` is the kernel text after the prelude; ``${name}`` is the
    dtype-suffixed function name and ``${NEG_INF}`` the accumulator's -inf.
    ``emulate(total, *args)`` takes the same arguments as the kernel (NumPy
    arrays for pointers, ints and floats for scalars) and writes the outputs.
    ``options`` are extra NVRTC compile options (``("--fmad=false",)`` keeps
    ``a * b + c`` two roundings, as NumPy computes it); ``max_blocks`` caps the
    grid of a ``launch`` (a kernel with per-thread setup wants fewer, longer threads).
    """

    name: str
    body: str
    emulate: Callable[..., None]
    options: tuple[str, ...] = ()
    max_blocks: int = MAX_BLOCKS  # the grid-stride launch's cap on blocks (``launch_config``)

    def function_name(self, dtype: Any) -> str:
        """The ``extern "C"`` name of the instantiation for ``dtype``."""
        return f"{self.name}_{ctype(dtype)[0]}"

    def source(self, dtype: Any) -> str:
        """Complete CUDA source for ``dtype`` (float16, float32 or float64)."""
        return _PRELUDE_COMMON + self._unit(dtype)

    def _unit(self, dtype: Any) -> str:
        """The dtype prelude and the instantiated kernel body."""
        suffix, t, acc = ctype(dtype)
        prelude = _PRELUDE_HALF if suffix == "f16" else string.Template(_PRELUDE_PLAIN).substitute(
            T=t, ACC=acc, **_MATH[acc]
        )
        neg_inf = "NEG_INF_D" if acc == "double" else "NEG_INF_F"
        body = string.Template(self.body).substitute(name=self.function_name(dtype), NEG_INF=neg_inf)
        return prelude + body


def combined_source(specs: list[KernelSpec], dtype: Any) -> str:
    """One translation unit with every kernel of ``specs`` for ``dtype`` (each in its own namespace).

    Compiling this once checks all kernels of a dtype at the cost of one compiler start
    (the CPU test); CuPy itself compiles each ``KernelSpec.source`` separately.
    """
    units = [f"namespace ember_k{i} {{\n{spec._unit(dtype)}\n}}\n" for i, spec in enumerate(specs)]
    return _PRELUDE_COMMON + "".join(units)


def ctype(dtype: Any) -> tuple[str, str, str]:
    """``(suffix, storage type, accumulator type)`` of a floating dtype.

    Raises:
        TypeError: ``dtype`` is not float16/32/64.
    """
    dt = numpy.dtype(dtype)
    try:
        return CTYPES[dt]
    except KeyError:
        raise TypeError(f"cupy kernels: expected float16, float32 or float64, got dtype {dt}") from None


def launch_config(total: int, block: int = BLOCK, max_blocks: int = MAX_BLOCKS) -> tuple[int, int]:
    """``(blocks, threads per block)`` for a grid-stride loop over ``total`` elements.

    Raises:
        ValueError: ``total`` is negative or ``block``/``max_blocks`` not positive.
    """
    if total < 0 or block <= 0 or max_blocks <= 0:
        raise ValueError(f"launch_config: expected total >= 0 and positive sizes, got {total}, {block}, {max_blocks}")
    return max(1, min((total + block - 1) // block, max_blocks)), block


def thread_indices(thread: int, total: int, blocks: int, block: int) -> range:
    """The element indices the grid-stride loop gives global thread ``thread`` (for tests)."""
    return range(thread, total, blocks * block)


def _is_numpy_call(args: tuple) -> bool:
    return any(isinstance(a, numpy.ndarray) for a in args)


def launch(spec: KernelSpec, dtype: Any, total: int, args: tuple) -> None:
    """Run ``spec`` over ``total`` output elements: on the GPU, or emulated for NumPy arrays.

    ``args`` follow the kernel's C signature, starting with the pointers and
    ending with ``total`` excluded (it is appended here).
    """
    if total == 0:
        return
    if _is_numpy_call(args):
        spec.emulate(total, *args)
        return
    blocks, threads = launch_config(total, max_blocks=spec.max_blocks)
    _compiled(spec, numpy.dtype(dtype))((blocks,), (threads,), tuple(args) + (total,))


def launch_blocks(spec: KernelSpec, dtype: Any, blocks: int, args: tuple) -> None:
    """Run a block-per-item kernel (``blocks`` blocks of ``BLOCK`` threads), or its emulation."""
    if blocks == 0:
        return
    if _is_numpy_call(args):
        spec.emulate(blocks, *args)
        return
    _compiled(spec, numpy.dtype(dtype))((blocks,), (BLOCK,), tuple(args))


@functools.cache
def _compiled(spec: KernelSpec, dtype: numpy.dtype) -> Any:
    """The CuPy ``RawKernel`` for ``spec`` and ``dtype`` (built once, compiled on first launch)."""
    import cupy

    return cupy.RawKernel(spec.source(dtype), spec.function_name(dtype), options=spec.options)


def emulate_window_read(x: Any, col: Any, index: tuple, geometry: tuple, pad_value: float) -> None:
    """``col`` (flat, one entry per lane) = ``x[n, c, oy*SH-PH+ky, ox*SW-PW+kx]``, ``pad_value`` outside.

    The read every im2col emulation shares, whatever order its lanes walk the window in.
    """
    n, c, ky, kx, oy, ox = index
    C, H, W, SH, SW, PH, PW = geometry
    iy, ix = oy * SH - PH + ky, ox * SW - PW + kx
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    src = numpy.where(inside, ((n * C + c) * H + iy) * W + ix, 0)
    col.reshape(-1)[:] = numpy.where(inside, x.reshape(-1)[src], col.dtype.type(pad_value))
