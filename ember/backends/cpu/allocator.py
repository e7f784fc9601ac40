"""Host allocator policy: keep freed activation buffers in the process instead of unmapping them.

A training step allocates and frees the same multi-MB arrays every iteration
(activations, im2col columns, gradients).  glibc serves large requests with
``mmap`` and gives freed memory back to the kernel, so the next step faults
fresh pages in again.  With glibc's ``M_MMAP_THRESHOLD`` at 64 MiB and
``M_TRIM_THRESHOLD`` at 512 MiB the same buffers are reused from the heap (no
page faults per step; numbers in ``docs/engineering/cpu-threads.md``).

Trade-off: the process keeps up to ``TRIM_THRESHOLD`` bytes of freed heap at the
top instead of returning it, so its resident size stays at its peak rather than
shrinking between steps (flat, not growing).  Arrays above ``MMAP_THRESHOLD``
still get their own mappings and are returned at once.  The policy is applied
with the CPU kernels (``ember.backends.numba.backend``), only on glibc, and not
when the user tunes malloc through ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` (their choice wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20
# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
USER_ENV_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_state = {"applied": None}


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the only one with these ``mallopt`` knobs), else None."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (AttributeError on musl and others)
    except (OSError, AttributeError):
        return None
    return libc


def apply_allocator_policy() -> bool:
    """Apply the policy once; True when glibc accepted it (False: not glibc, or the user chose).

    Returns:
        Whether the thresholds are now ember's.
    """
    if _state["applied"] is not None:
        return _state["applied"]
    ok = False
    if not any(os.environ.get(v) for v in USER_ENV_VARS):
        libc = _glibc()
        if libc is not None:
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
    _state["applied"] = ok
    return ok
