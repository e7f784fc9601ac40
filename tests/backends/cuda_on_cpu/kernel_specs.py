"""Where the CUDA kernels and their references live: the one place to change when modules move."""

from __future__ import annotations

import importlib
from types import SimpleNamespace


def _load(names: dict) -> SimpleNamespace:
    return SimpleNamespace(**{k: importlib.import_module(v) for k, v in names.items()})


def kernel_modules() -> tuple:
    """``(source module, [modules defining KernelSpecs and calling launch/launch_blocks])``."""
    source = importlib.import_module("ember.backends.cupy.kernel_spec")
    w = cuda_wrappers()
    return source, [w.conv, w.conv_gemm, w.pool, w.nn, w.bn, w.optim, w.philox, w.optim_captured]


def cuda_wrappers() -> SimpleNamespace:
    """The CuPy backend's kernel wrappers (``im2col``, ``max_pool2d_forward``, ``sgd_update`` ...)."""
    return _load({"conv": "ember.backends.cupy.conv", "conv_gemm": "ember.backends.cupy.conv_gemm",
                  "pool": "ember.backends.cupy.pool",
                  "nn": "ember.backends.cupy.nn", "bn": "ember.backends.cupy.bn", "optim": "ember.backends.cupy.optim",
                  "philox": "ember.backends.cupy.philox",
                  "optim_captured": "ember.backends.cupy.optim_captured"})


def references() -> SimpleNamespace:
    """The NumPy reference kernels the CUDA wrappers must agree with."""
    return _load({"conv": "ember.backends.reference.conv", "pool": "ember.backends.reference.pool",
                  "nn": "ember.backends.reference.nn", "optim": "ember.backends.reference.optim",
                  "philox": "ember.backends.reference.philox"})


def all_kernel_specs() -> list:
    """Every ``KernelSpec`` ember defines, as the GPU compile check sees them."""
    return importlib.import_module("ember.backends.cupy.specs").all_specs()
