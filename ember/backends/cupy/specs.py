"""Every CUDA kernel of the CuPy backend, collected for the compile test and the GPU check.

Its own module, above the kernel modules, so that ``kernel_spec`` (which they
import) never imports them back.
"""

from __future__ import annotations

from ember.backends.cupy import bn, conv, conv_gemm, nn, optim, optim_captured, philox, pool
from ember.backends.cupy.kernel_spec import KernelSpec


def all_specs() -> list[KernelSpec]:
    """Every ``KernelSpec`` of the conv, conv_gemm, pool, nn, bn, optim, philox, optim_captured modules, in order."""
    specs: list[KernelSpec] = []
    for module in (conv, conv_gemm, pool, nn, bn, optim, philox, optim_captured):
        specs.extend(module.SPECS)
    return specs
