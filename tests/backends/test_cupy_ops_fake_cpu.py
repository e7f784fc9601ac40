"""Every registered op through ember's CuPy backend on the fake ``cupy`` module, against the CPU.

The same sweep as ``tests/gpu/test_cuda_ops.py::test_op_forward_backward_on_cuda_equals_cpu``
(each op's samples, forward and gradients, float32), run on the CPU so that a CUDA-side
wiring mistake (an argument CuPy does not take, a tuple output the comparison mishandles)
fails here before a GPU run: the fake module mirrors CuPy's signatures where they differ
from NumPy's (``argsort`` takes no ``kind``).
"""

from __future__ import annotations

import pytest
from op_sweep import assert_same, cases, run
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture


@pytest.mark.parametrize("name,k", cases())
def test_op_through_the_cupy_backend_equals_cpu(fake_cupy, name, k):
    assert_same(run(name, k, "cuda"), run(name, k, "cpu"))
