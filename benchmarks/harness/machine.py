"""What the numbers were measured on: CPU, load, package versions and thread settings.

The parent records the machine and versions without importing the peer
frameworks (``importlib.metadata`` reads their versions from the install);
each worker adds what only the target's process knows (thread pools, device
name, which kernels ran).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("ember", "numpy", "numba", "torch", "cupy-cuda12x", "cupy-cuda13x", "cupy", "threadpoolctl",
            "matplotlib")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "EMBER_CPU_KERNELS", "EMBER_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_identity(cpuinfo: str | None = None) -> str | None:
    """``"family F model M, AVX-512"`` (or ``no AVX-512``) from /proc/cpuinfo (or the ``cpuinfo`` text):
    one marketing name covers several generations, whose BLAS kernels (and so ember's GEMM cuts) differ;
    None off Linux."""
    fields: dict = {}
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "flags") and key not in fields:
                fields[key] = value.strip()
            if not key and fields:  # the end of the first processor's block
                break
    except OSError:
        return None
    if "cpu family" not in fields or "model" not in fields:
        return None
    avx512 = "AVX-512" if "avx512f" in fields.get("flags", "").split() else "no AVX-512"
    return f"family {fields['cpu family']} model {fields['model']}, {avx512}"


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict:
    """Installed version of each package of interest (None when absent), plus Python's."""
    out: dict = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def thread_env() -> dict:
    """The thread-related environment variables as set (None when unset)."""
    return {k: os.environ.get(k) for k in THREAD_ENV}


def machine_info() -> dict:
    """CPU, core count, OS, memory and load of this machine."""
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cpu_identity": cpu_identity(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "memory_bytes": mem,
        "load_average": load_average(),
        "thread_env": thread_env(),
    }


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def blas_threads() -> list[dict]:
    """The native thread pools loaded in this process (BLAS, OpenMP) and their sizes."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"api": p.get("user_api"), "internal_api": p.get("internal_api"), "num_threads": p.get("num_threads"),
             "version": p.get("version"), "architecture": p.get("architecture")} for p in threadpool_info()]


def slug(text: str) -> str:
    """A file-name-safe lowercase form of a device name (``NVIDIA H200`` -> ``nvidia-h200``)."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part) or "unknown"
