"""The registry of targets: name -> how to start it (module, options, environment).

Only these light specs are imported by the parent; a target's module (which may
import torch or cupy) is imported in its own worker process.  ``precheck`` is a
cheap parent-side test that skips GPU targets on a machine without an NVIDIA
device, without spawning a process.
"""

from __future__ import annotations

import glob
import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TargetSpec:
    """How to run one target: its class and options, extra environment, and its device."""

    name: str
    module: str
    cls: str
    device: str
    description: str
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    needs: tuple = ()

    def precheck(self) -> str | None:
        """None when the target may be available, else the reason it is not (no process started)."""
        for package in self.needs:
            if importlib.util.find_spec(package) is None:
                return f"{package} is not installed"
        if self.device == "cuda" and not glob.glob("/dev/nvidia[0-9]*"):
            return "no NVIDIA GPU on this machine (/dev/nvidia* absent)"
        return None


_EMBER = "benchmarks.targets.ember_target"
_TORCH = "benchmarks.targets.torch_target"
_BOOK = "benchmarks.targets.book_target"

_SPECS = [
    TargetSpec("ember-numpy", _EMBER, "EmberTarget", "cpu", "ember, NumPy reference kernels",
               {"kernels": "numpy"}, {"EMBER_CPU_KERNELS": "numpy"}),
    TargetSpec("ember-numba", _EMBER, "EmberTarget", "cpu", "ember, Numba CPU kernels",
               {"kernels": "numba"}, {"EMBER_CPU_KERNELS": "numba"}, ("numba",)),
    TargetSpec("ember-cpu-compiled", _EMBER, "EmberTarget", "cpu", "ember, Numba CPU kernels, step replayed "
               "from a captured tape (ember.compile)", {"kernels": "numba", "graph": True},
               {"EMBER_CPU_KERNELS": "numba"}, ("numba",)),
    TargetSpec("ember-cuda", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float32", {}, {}, ("cupy",)),
    TargetSpec("ember-cuda-graph", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float32, CUDA graph replay",
               {"graph": True}, {}, ("cupy",)),
    TargetSpec("ember-cuda-amp", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float16 autocast + GradScaler",
               {"precision": "amp"}, {}, ("cupy",)),
    TargetSpec("ember-cuda-amp-graph", _EMBER, "EmberTarget", "cuda", "ember on CuPy, AMP, CUDA graph replay",
               {"precision": "amp", "graph": True}, {}, ("cupy",)),
    TargetSpec("torch-cpu", _TORCH, "TorchTarget", "cpu", "PyTorch eager on the CPU", {}, {}, ("torch",)),
    TargetSpec("torch-cuda", _TORCH, "TorchTarget", "cuda", "PyTorch eager on the GPU, float32", {}, {},
               ("torch",)),
    TargetSpec("torch-cuda-amp", _TORCH, "TorchTarget", "cuda", "PyTorch eager on the GPU, float16 autocast",
               {"precision": "amp"}, {}, ("torch",)),
    TargetSpec("book-numpy", _BOOK, "BookTarget", "cpu", "the book's layers in plain NumPy (no autograd)"),
]

TARGETS: dict[str, TargetSpec] = {s.name: s for s in _SPECS}


def resolve(names: list[str] | None) -> list[TargetSpec]:
    """The specs for ``names`` in the order given (all targets, in registry order, when None).

    Raises:
        ValueError: an unknown target name (the message lists the valid ones).
    """
    if not names:
        return list(_SPECS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; choose from: {', '.join(TARGETS)}")
    return [TARGETS[n] for n in dict.fromkeys(names)]
