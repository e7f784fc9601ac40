"""Every registered op through ember's CuPy backend on the fake ``cupy`` module, against the CPU.

The same sweep as ``tests/gpu/test_cuda_ops.py::test_op_forward_backward_on_cuda_equals_cpu``
(each op's samples, forward and gradients, float32), run on the CPU so that a CUDA-side
wiring mistake (an argument CuPy does not take, a tuple output the comparison mishandles)
fails here before a GPU run: the fake module mirrors CuPy's signatures where they differ
from NumPy's (``argsort`` takes no ``kind``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy
import pytest

from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture

_spec = importlib.util.spec_from_file_location("cuda_ops_sweep", Path(__file__).parents[1] / "gpu" / "test_cuda_ops.py")
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


@pytest.mark.parametrize("name,k", sweep._cases())
def test_op_through_the_cupy_backend_equals_cpu(fake_cupy, name, k):
    outs_cpu, g_cpu = sweep._run(name, k, "cpu")
    outs_dev, g_dev = sweep._run(name, k, "cuda")
    assert len(outs_dev) == len(outs_cpu)
    for dev, cpu in zip(outs_dev, outs_cpu):
        assert dev.device == "cuda:0" and dev.dtype == cpu.dtype
        numpy.testing.assert_allclose(dev.numpy(), cpu.numpy(), **sweep.F32)
    assert len(g_dev) == len(g_cpu)
    for a, b in zip(g_dev, g_cpu):
        assert (a is None) == (b is None)
        if a is not None:
            numpy.testing.assert_allclose(a, b, **sweep.F32)
