"""CUDA graphs (``ember.cuda.graphs``, ``ember.compile`` on CUDA) on the CPU through the fake ``cupy``.

The fake records what a capture launches and replays it on ``launch()``
(tests/backends/fake_cuda_graph.py), restoring the arrays that existed before
the capture, so a captured step that froze a value, read the host, copied from
the host or rebound a buffer shows here as it would on a GPU.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
import fake_cuda_graph as fcg
from ember.autograd.capture import CaptureError
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture


@pytest.fixture
def graphs(fake_cupy, monkeypatch):
    """The fake cupy with capture recording; ember's capture streams and cuBLAS handles reset."""
    lib = fcg.install(monkeypatch)
    from ember.cuda import graphs as g

    monkeypatch.setattr(g, "_STREAMS", {})
    return lib


def test_low_level_graph_replays_on_new_input_without_running_at_capture(graphs):
    x = em.tensor([1.0, 2.0], device="cuda")
    w = em.tensor([3.0, 4.0], device="cuda", requires_grad=True)
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        y = (x * w).sum()
        y.backward()
    cap = fcg.last_capture()
    assert cap.stream.ptr not in (0, 1) and cap.stream is em.cuda.graphs.capture_stream()
    assert g.pool() is not None and g.pool().used(cap) and all(p is g.pool() for p in cap.pools_used)
    assert fcg.launches() == 0
    x.data[...] = numpy.array([5.0, 6.0], numpy.float32)
    g.replay()
    assert y.item() == 5 * 3 + 6 * 4 and w.grad.tolist() == [5.0, 6.0]
    assert any(a is x.data for a in g._keep)  # an input the graph reads outlives the user's reference
    x.data[...] = numpy.array([1.0, 1.0], numpy.float32)
    g.replay()
    assert y.item() == 7.0 and fcg.launches() == 2


def test_capture_refuses_host_reads_copies_and_cupy_gemm(graphs):
    import cupy

    x = em.tensor(numpy.ones((2, 2), numpy.float32), device="cuda")
    for step, hint in [(lambda: float((x * 2).sum().item()), "host read"),
                       (lambda: x + em.tensor(numpy.ones((2, 2), numpy.float32), device="cuda"), "host->device"),
                       (lambda: cupy.matmul(x.data, x.data), "cuBLAS")]:
        with pytest.raises(CaptureError, match=hint), em.cuda.graph(em.cuda.CUDAGraph()):
            step()
    g = em.cuda.CUDAGraph()  # the refused captures left nothing behind
    with em.cuda.graph(g):
        y = x @ x  # 2-D products take ember's own cuBLAS handle during capture
    g.replay()
    assert y.tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_host_drawn_dropout_mask_is_refused_with_the_reason(graphs):
    x = em.ones((4, 4), device="cuda")
    with pytest.raises(CaptureError, match="dropout draws its mask on the host"), em.cuda.graph(em.cuda.CUDAGraph()):
        em.nn.functional.dropout(x, 0.5)


def test_replay_refuses_a_rebound_parameter(graphs):
    w = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        (w * w).sum().backward()
    w.data = w.data.copy()
    with pytest.raises(RuntimeError, match="given a new array"):
        g.replay()
