"""What every target provides: availability, building a case into a callable, timers and peak rates.

A target is one way of running the cases (ember on a backend, PyTorch, the
book's NumPy layers).  ``build(case)`` returns a ``Bench`` whose ``step()`` is
the timed call; everything it needs (model, optimizer, data) is created there,
outside the timed region.  A case the target cannot run raises ``Skip`` with
the reason, which ends up in the results instead of a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.harness.timing import WallTimer


class Skip(Exception):
    """This target cannot run this case (or at all); the message says why."""


PRECISIONS = ("float64", "float32", "float16", "amp")


@dataclass
class Bench:
    """A built case: ``step()`` is timed; ``items`` counts samples (or ops) per call for throughput."""

    step: Callable[[], Any]
    items: int = 1
    meta: dict = field(default_factory=dict)
    teardown: Callable[[], None] | None = None


class Target:
    """Base class: subclasses implement ``probe`` and ``build_<kind>`` for the case kinds they support."""

    framework = "?"
    # How the host memory of one call is measured: "tracemalloc" (NumPy buffers) or "rss".
    host_memory = "tracemalloc"

    def __init__(self, name: str, device: str = "cpu", precision: str = "float32", graph: bool = False,
                 **options: Any):
        self.name, self.device, self.precision, self.graph = name, device, precision, graph
        self.options = options

    def probe(self) -> dict:
        """Information about this target's process (versions, threads, device); raises ``Skip`` if unusable."""
        raise NotImplementedError

    def build(self, case: dict) -> Bench:
        """Dispatch to ``build_<kind>`` with the case's parameters."""
        builder = getattr(self, f"build_{case['kind']}", None)
        if builder is None:
            raise Skip(f"{self.name} has no implementation of {case['kind']!r} cases")
        return builder(dict(case["params"]))

    def case_precision(self, params: dict) -> str:
        """The precision a case runs in: the case's own, else the target's default."""
        wanted = params.get("precision")
        if wanted is None:
            return self.precision
        if wanted not in PRECISIONS:
            raise ValueError(f"{self.name}: unknown precision {wanted!r}; expected one of {PRECISIONS}")
        if self.precision == "amp":
            raise Skip(f"{self.name} always runs AMP; cases with their own precision run on the base target")
        return wanted

    def sync(self) -> None:
        """Wait for queued device work (nothing on the CPU)."""

    def timer(self) -> Any:
        """The sample timer: wall clock around synchronisations by default."""
        return WallTimer(self.sync)

    def reset_device_peak(self) -> None:
        """Reset the device allocator's peak counter (GPU targets)."""

    def device_peak_bytes(self) -> int | None:
        """Peak device memory since the last reset (None on the CPU)."""
        return None

    def peak_rates(self, quick: bool) -> dict:
        """Measured GEMM FLOP/s and copy bandwidth of this target's device (the roofline's ceilings)."""
        raise Skip(f"{self.name} does not measure peak rates")
