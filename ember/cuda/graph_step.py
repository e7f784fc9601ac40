"""``ember.compile`` on CUDA: one CUDA graph per input signature, replayed with each call's tensors.

The step's Tensor arguments are copied once into static inputs of ember's own,
the step is captured on them (``ember.cuda.graphs``), and every call copies the
new batch into those inputs (device to device, in place) and launches the
graph. The step's return value is the capture's: the same output Tensors each
call, refreshed in place by every launch (clone one to keep it across calls).
Host Python inside the step runs only at capture: call a learning-rate
scheduler's ``step()`` outside the compiled step (the optimizer reads ``lr``
from device memory refreshed before every launch).
"""

from __future__ import annotations

from typing import Any

from ember.autograd.tensor import Tensor
from ember.cuda import device
from ember.cuda.graphs import CUDAGraph, graph


def _static_copy(v: Any) -> Any:
    return Tensor._make(v.data.copy(), v.requires_grad) if isinstance(v, Tensor) else v


class GraphedStep:
    """A captured CUDA step: its graph, static inputs and static outputs."""

    def __init__(self, fn: Any, args: tuple, kwargs: dict):
        self.static_args = tuple(_static_copy(a) for a in args)
        self.static_kwargs = {k: _static_copy(v) for k, v in kwargs.items()}
        self.inputs = [a for a in self.static_args if isinstance(a, Tensor)] + [
            self.static_kwargs[k] for k in sorted(self.static_kwargs) if isinstance(self.static_kwargs[k], Tensor)]
        self.device = self.inputs[0].device.index or 0  # capture and replay on the inputs' GPU
        self.graph = CUDAGraph()
        with device(self.device), graph(self.graph):
            self.output = fn(*self.static_args, **self.static_kwargs)

    def run(self, args: tuple, kwargs: dict) -> Any:
        """Copy the call's tensors into the static inputs, launch the graph, return the static outputs."""
        given = [a for a in args if isinstance(a, Tensor)] + [kwargs[k] for k in sorted(kwargs)
                                                             if isinstance(kwargs[k], Tensor)]
        with device(self.device):
            for static, new in zip(self.inputs, given):
                if new.data is not static.data:
                    static.data[...] = new.data
            self.graph.replay()
        return self.output


def capture_step(fn: Any, args: tuple, kwargs: dict) -> GraphedStep:
    """Capture ``fn(*args, **kwargs)`` as a CUDA graph (the call itself runs at the first ``run``)."""
    return GraphedStep(fn, args, kwargs)
