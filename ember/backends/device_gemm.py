"""Which GEMM a 2-D product of device arrays takes: CuPy's ``@``, or ember's own cuBLAS handle.

CuPy refuses cuBLAS while a stream captures a CUDA graph, so during a capture
(``ember.cuda.graphs``) 2-D products go through ``ember.backends.cupy.cublas``;
with ``EMBER_OWN_GEMM=always`` in the environment they always do (see that
module for the trade-off). NumPy arrays never come here: the CPU multiplies
with ``@``. Importing this module never imports CuPy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy


from ember.backends.capture_state import CAPTURING  # > 0 while ember.cuda.graphs captures

ALWAYS = os.environ.get("EMBER_OWN_GEMM", "") == "always"


FORCED = [0]  # > 0 inside ``own_gemm()``


def use_own_gemm() -> bool:
    """True when device GEMMs go through ember's own cuBLAS handle now."""
    return ALWAYS or CAPTURING[0] > 0 or FORCED[0] > 0


@contextlib.contextmanager
def own_gemm() -> Iterator[None]:
    """Use ember's cuBLAS handle in this block (``ember.compile``'s CUDA warm-up: the graph's GEMMs, loaded early)."""
    FORCED[0] += 1
    try:
        yield
    finally:
        FORCED[0] -= 1


def matmul(a: Any, b: Any) -> Any:
    """``a @ b``; for 2-D device arrays through ember's cuBLAS handle when ``use_own_gemm()``."""
    if type(a) is numpy.ndarray or not use_own_gemm() or a.ndim != 2 or b.ndim != 2:
        return a @ b
    if a.dtype.kind != "f" or b.dtype.kind != "f":  # CuPy multiplies integers with its own kernel, not cuBLAS
        return a @ b
    if a.dtype != b.dtype:  # NumPy's promotion, as ``@`` would do
        dtype = numpy.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    import sys

    from ember.backends.cupy import cublas

    return cublas.matmul(a, b, sys.modules["cupy"])


def matmul_any(xp: Any, a: Any, b: Any) -> Any:
    """``xp.matmul(a, b)`` for any ranks, the 2-D case through :func:`matmul`."""
    if a.ndim == 2 and b.ndim == 2:
        return matmul(a, b)
    return xp.matmul(a, b)
