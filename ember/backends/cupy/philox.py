"""CUDA Philox4x32-10 dropout masks: the device twin of ``ember.backends.reference.philox``.

Two kernels, both capturable in a CUDA graph (no host reads, no host copies, no
cuRAND state): ``ember_philox_dropout`` reads the generator state ``[seed,
offset]`` from device memory and writes the mask, one thread per 128-bit block
(four mask elements); ``ember_philox_advance`` then adds the blocks used to the
offset on the device.  A captured step therefore draws a fresh mask at every
replay, and the bits equal the NumPy twin's for the same state on any device.

The kernel's bits are plain 32x32->64-bit products, shifts and xors: no device
intrinsic, so the host C++ build of the same text (the CPU test harness) is
bit-exact, as is the NumPy emulation.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy

from ember.backends.cupy.kernel_spec import CTYPES, KernelSpec, launch
from ember.backends.reference import philox as _ref

_PHILOX_DROPOUT_BODY = """
__device__ __forceinline__ void philox_round(unsigned int* c, unsigned int k0, unsigned int k1) {
  unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
  unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
  unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
  unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
  c[0] = hi1 ^ c[1] ^ k0;
  c[1] = lo1;
  c[2] = hi0 ^ c[3] ^ k1;
  c[3] = lo0;
}

extern "C" __global__ void ${name}(T* __restrict__ mask, const long long* __restrict__ state, long long n,
    long long threshold, double scale, long long total) {
  const unsigned long long seed = (unsigned long long)state[0];
  const unsigned long long offset = (unsigned long long)state[1];
  const T keep_value = from_acc((ACC)scale), drop_value = from_acc((ACC)0);
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < total;
       g += (long long)gridDim.x * blockDim.x) {
    const unsigned long long block = offset + (unsigned long long)g;  // wraps mod 2**64, as the twin
    unsigned int c[4] = {(unsigned int)block, (unsigned int)(block >> 32), 0u, 0u};
    unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
    philox_round(c, k0, k1);
    for (int r = 1; r < 10; ++r) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
      philox_round(c, k0, k1);
    }
    for (int j = 0; j < 4; ++j) {
      const long long i = 4 * g + j;
      if (i < n) mask[i] = ((long long)c[j] >= threshold) ? keep_value : drop_value;
    }
  }
}
"""

_PHILOX_ADVANCE_BODY = """
extern "C" __global__ void ${name}(long long* __restrict__ state, long long blocks, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    state[1] = (long long)((unsigned long long)state[1] + (unsigned long long)blocks);
  }
}
"""


def _emulate_dropout(total: int, mask: Any, state: Any, n: int, threshold: int, scale: float) -> None:
    # Same words as the kernel's thread g: block offset + g, words 4g .. 4g + 3.
    seed, offset = (int(v) for v in numpy.asarray(state).view(numpy.uint64))
    words = _ref.random_words(seed, offset, 4 * total)[:n].astype(numpy.int64)
    flat = mask.reshape(-1)
    keep = words >= threshold
    flat[:] = 0
    flat[keep] = mask.dtype.type(scale)


def _emulate_advance(total: int, state: Any, blocks: int) -> None:
    _ref.advance(state, blocks)


PHILOX_DROPOUT = KernelSpec("ember_philox_dropout", _PHILOX_DROPOUT_BODY, _emulate_dropout)
PHILOX_ADVANCE = KernelSpec("ember_philox_advance", _PHILOX_ADVANCE_BODY, _emulate_advance)
SPECS = [PHILOX_DROPOUT, PHILOX_ADVANCE]


def dropout_mask(shape: tuple, p: float, state: Any, dtype: Any, *, xp: Any = numpy) -> Any:
    """``reference.philox.dropout_mask`` on the device: two launches, no host transfer.

    Args:
        shape: the mask's shape.
        p: drop probability in ``[0, 1)``.
        state: the int64 ``[seed, offset]`` array on the mask's device, advanced in place by a kernel.
        dtype: float16, float32 or float64.
        xp: the array module that allocates the mask (CuPy, or a backend's per-device view).

    Returns:
        A C-contiguous array of ``shape`` and ``dtype``.
    """
    dtype = numpy.dtype(dtype)
    if dtype not in CTYPES:
        raise TypeError(f"dropout: expected a float16, float32 or float64 mask, got dtype {dtype}")
    n = math.prod(shape)
    blocks = _ref.blocks_for(n)
    # The scale travels as a double holding the dtype's own value (float16 inf included), so the
    # kernel's conversion back to T is exact and equals the reference's rounding.
    scale = float(_ref.dropout_scale(p, dtype))
    with _on_device_of(state):  # the mask and the launches go to the GPU holding the state (x's)
        mask = xp.empty(shape, dtype=dtype)
        if blocks:
            launch(PHILOX_DROPOUT, dtype, blocks, (mask, state, n, _ref.dropout_threshold(p), scale))
            launch(PHILOX_ADVANCE, dtype, 1, (state, blocks))
    return mask


def _on_device_of(array: Any) -> Any:
    """CuPy's device context of ``array``'s GPU; a null context for host arrays (the CPU test harness)."""
    device = getattr(array, "device", None)
    if not hasattr(device, "id"):  # NumPy 2 arrays have ``device == "cpu"``
        return contextlib.nullcontext()
    import cupy

    if cupy.cuda.runtime.getDevice() == device.id:  # the usual case: no device switch (nothing during a capture)
        return contextlib.nullcontext()
    return cupy.cuda.Device(device.id)


def stream_is_capturing() -> bool:
    """True while CuPy's current stream is capturing a CUDA graph (False where it cannot tell)."""
    import cupy

    query = getattr(cupy.cuda.get_current_stream(), "is_capturing", None)
    if query is None:
        return False
    try:
        return bool(query())
    except Exception:  # noqa: BLE001 - a driver that cannot answer: treat as eager
        return False
