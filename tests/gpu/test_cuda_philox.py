"""GPU checks (marker ``gpu``) of the Philox dropout kernels: bit-equal to the NumPy twin, and capturable.

Run: ``PYTHONPATH=. python -m pytest -m gpu -q tests/gpu/test_cuda_philox.py``.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.backends.reference import philox as twin

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not em.cuda.is_available(),
                       reason='needs CuPy and a CUDA GPU (pip install -e ".[gpu]" on an NVIDIA machine)'),
]


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("p", [1e-9, 0.3, 1 - 1e-7])
def test_device_mask_is_bit_equal_to_the_twin(dtype, p):
    import cupy

    from ember.backends.cupy import philox

    for seed, offset, shape in ((0, 0, (3, 5, 7)), (2**64 - 1, 2**32 - 2, (13,)), (99, 2**64 - 3, (64, 1000))):
        dev, host = twin.new_state(seed, offset, xp=cupy), twin.new_state(seed, offset)
        for _ in range(2):
            got = cupy.asnumpy(philox.dropout_mask(shape, p, dev, dtype, xp=cupy))
            want = twin.dropout_mask(shape, p, host, dtype)
            assert got.tobytes() == want.tobytes()
            numpy.testing.assert_array_equal(cupy.asnumpy(dev), host)


def test_dropout_on_cuda_equals_the_cpu_for_one_seed():
    x = numpy.random.default_rng(0).normal(size=(32, 50)).astype(numpy.float32)
    out = {}
    for dev in ("cpu", "cuda"):
        em.manual_seed(17)
        out[dev] = [em.nn.functional.dropout(em.tensor(x, device=dev), 0.5).numpy() for _ in range(3)]
    for a, b in zip(out["cuda"], out["cpu"]):
        numpy.testing.assert_array_equal(a, b)


def test_a_captured_cuda_graph_draws_the_next_mask_at_every_replay():
    import cupy

    from ember.backends.cupy import philox

    shape, p = (16, 33), 0.4
    state = twin.new_state(5, xp=cupy)
    philox.dropout_mask(shape, p, state, numpy.float32, xp=cupy)  # warm: compiled, and a pooled block to reuse
    cupy.cuda.Device().synchronize()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        mask = philox.dropout_mask(shape, p, state, numpy.float32, xp=cupy)
        graph = stream.end_capture()
    host = twin.new_state(5, twin.blocks_for(16 * 33))  # capture records, it does not run
    seen = []
    for _ in range(3):
        graph.launch(stream)
        stream.synchronize()
        got = cupy.asnumpy(mask)
        numpy.testing.assert_array_equal(got, twin.dropout_mask(shape, p, host, numpy.float32))
        seen.append(got.tobytes())
    assert len(set(seen)) == 3
    numpy.testing.assert_array_equal(cupy.asnumpy(state), host)
