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
# Float32 GPU baselines are named for their math: a plain name is IEEE float32 (TF32 off), "-tf32"
# allows TF32 tensor cores.  CuPy reads CUPY_TF32 when imported, so it goes in the worker's environment;
# setting "0" keeps a CUPY_TF32=1 in the caller's shell from changing what "ember-cuda" means.
_TF32_OFF = {"CUPY_TF32": "0"}

_SPECS = [
    TargetSpec("ember-numpy", _EMBER, "EmberTarget", "cpu", "ember, NumPy reference kernels",
               {"kernels": "numpy"}, {"EMBER_CPU_KERNELS": "numpy"}),
    TargetSpec("ember-numba", _EMBER, "EmberTarget", "cpu", "ember, Numba CPU kernels",
               {"kernels": "numba"}, {"EMBER_CPU_KERNELS": "numba"}, ("numba",)),
    TargetSpec("ember-cpu-compiled", _EMBER, "EmberTarget", "cpu", "ember, Numba CPU kernels, step replayed "
               "from a captured tape (ember.compile)", {"kernels": "numba", "graph": True},
               {"EMBER_CPU_KERNELS": "numba"}, ("numba",)),
    TargetSpec("ember-cuda", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float32 (IEEE: TF32 off)", {},
               _TF32_OFF, ("cupy",)),
    TargetSpec("ember-cuda-tf32", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float32 with TF32 tensor-core "
               "GEMMs (CUPY_TF32=1)", {}, {"CUPY_TF32": "1"}, ("cupy",)),
    TargetSpec("ember-cuda-graph", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float32 (TF32 off), CUDA graph "
               "replay", {"graph": True}, _TF32_OFF, ("cupy",)),
    TargetSpec("ember-cuda-amp", _EMBER, "EmberTarget", "cuda", "ember on CuPy, float16 autocast + GradScaler",
               {"precision": "amp"}, _TF32_OFF, ("cupy",)),
    TargetSpec("ember-cuda-amp-graph", _EMBER, "EmberTarget", "cuda", "ember on CuPy, AMP, CUDA graph replay",
               {"precision": "amp", "graph": True}, _TF32_OFF, ("cupy",)),
    TargetSpec("torch-cpu", _TORCH, "TorchTarget", "cpu", "PyTorch eager on the CPU", {}, {}, ("torch",)),
    TargetSpec("torch-cuda", _TORCH, "TorchTarget", "cuda", "PyTorch eager on the GPU, float32 (IEEE: TF32 off "
               "for convolutions and matmuls)", {"tf32": "off"}, {}, ("torch",)),
    TargetSpec("torch-cuda-tf32", _TORCH, "TorchTarget", "cuda", "PyTorch eager on the GPU, float32 with torch's "
               "default TF32 settings (on for cuDNN convolutions)", {"tf32": "default"}, {}, ("torch",)),
    TargetSpec("torch-cuda-amp", _TORCH, "TorchTarget", "cuda", "PyTorch eager on the GPU, float16 autocast "
               "(torch's default TF32 settings)", {"precision": "amp", "tf32": "default"}, {}, ("torch",)),
    TargetSpec("torch-cuda-graph", _TORCH, "TorchTarget", "cuda", "PyTorch on the GPU, float32 (TF32 off), the "
               "whole training step captured with torch.cuda.graphs (capturable optimizer), replayed after a copy "
               "into static inputs", {"tf32": "off", "graph": True}, {}, ("torch",)),
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
