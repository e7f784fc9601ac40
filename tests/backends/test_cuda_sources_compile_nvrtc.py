"""Every CUDA kernel source of the CuPy backend compiles with NVRTC, the compiler CuPy uses on the device.

The host-C++ harness (``cuda_on_cpu``) checks what the sources compute, with g++; this checks that
NVRTC itself accepts them (for Hopper, ``compute_90``), with each kernel's own options, in every
dtype. NVRTC needs no GPU: the ``nvidia-cuda-nvrtc-cu12`` wheel (in the ``test`` extra on Linux)
carries the library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os

import numpy
import pytest

from ember.backends.cupy.specs import all_specs


def _library() -> str | None:
    """libnvrtc from the nvidia wheel or the system, or None."""
    spec = importlib.util.find_spec("nvidia")
    for root in list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []:
        found = sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so*")))
        found = [f for f in found if ".alt." not in f and "builtins" not in f]
        if found:
            return found[0]
    return ctypes.util.find_library("nvrtc")


LIB = _library()
pytestmark = pytest.mark.skipif(LIB is None, reason="libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12 "
                                                    "(the test extra has it on Linux) to compile the CUDA sources")


def _compile(lib: ctypes.CDLL, source: str, options: list[str]) -> tuple[int, str]:
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None) == 0
    try:
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        rc = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        return rc, log.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.fixture(scope="module")
def nvrtc() -> ctypes.CDLL:
    return ctypes.CDLL(LIB)


def test_a_broken_source_is_refused(nvrtc):
    rc, log = _compile(nvrtc, 'extern "C" __global__ void f(float* y) { y[0] = undefined_name; }',
                       ["--gpu-architecture=compute_90"])
    assert rc != 0 and "undefined_name" in log


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_every_kernel_compiles_for_hopper(nvrtc, dtype):
    failures = []
    for spec in all_specs():
        rc, log = _compile(nvrtc, spec.source(numpy.dtype(dtype)), ["--gpu-architecture=compute_90", *spec.options])
        if rc != 0:
            failures.append(f"{spec.function_name(numpy.dtype(dtype))}: {log[:600]}")
    assert not failures, "\n".join(failures)
