"""Graph memory: nodes hold no links to their outputs, so a dropped graph dies by refcount alone.

Every check runs with the cyclic garbage collector disabled: if freeing a
graph needed the collector (a reference cycle somewhere), the objects would
still be alive and the counts would grow.
"""

from __future__ import annotations

import contextlib
import gc
import os
import weakref

import numpy
import pytest

import ember as em
from ember.autograd import Function, Tensor

try:
    import psutil
except ImportError:  # fall back to /proc/self/statm or resource
    psutil = None


@contextlib.contextmanager
def gc_disabled():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def live(cls: type) -> int:
    """Number of live objects of ``cls`` (or a subclass) that the collector tracks."""
    return sum(1 for o in gc.get_objects() if issubclass(type(o), cls))


def rss_bytes() -> int:
    """Current resident set size of this process."""
    if psutil is not None:
        return psutil.Process().memory_info().rss
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource  # peak, not current: a weaker check, but growth still shows

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def small_graph(x: Tensor) -> tuple[Tensor, list]:
    """A graph with a diamond, a multi-input op and a reduction; returns (loss, weakrefs to nodes)."""
    h = (x * 2.0).tanh()
    k = h * h + h.exp()
    y = (k @ k.T).sum()
    nodes, seen, stack = [], set(), [y.grad_fn]
    while stack:  # collect every node of the graph, iteratively
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        nodes.append(weakref.ref(fn))
        stack.extend(e[0] for e in fn._edges if isinstance(e, tuple))
    return y, nodes


def test_dropped_graph_is_freed_immediately_without_gc():
    x = em.tensor(numpy.ones((3, 4)), dtype=em.float64, requires_grad=True)
    with gc_disabled():
        y, nodes = small_graph(x)
        assert len(nodes) >= 7 and all(r() is not None for r in nodes)
        ry = weakref.ref(y)
        del y
        assert ry() is None
        assert [r() for r in nodes] == [None] * len(nodes)


@pytest.mark.parametrize("retain_graph", [False, True])
def test_graph_is_freed_after_backward_without_gc(retain_graph):
    x = em.tensor(numpy.ones((3, 4)), dtype=em.float64, requires_grad=True)
    with gc_disabled():
        y, nodes = small_graph(x)
        y.backward(retain_graph=retain_graph)
        del y
        assert [r() for r in nodes] == [None] * len(nodes)
    assert x.grad is not None and x.grad.grad_fn is None


def test_intermediate_tensors_are_not_kept_by_the_graph():
    # Edges point at the creator node, not at the intermediate Tensor object.
    x = em.tensor([0.5, 1.0], dtype=em.float64, requires_grad=True)
    with gc_disabled():
        h = x.tanh()
        rh = weakref.ref(h)
        y = h.tanh().sum()
        del h
        assert rh() is None
        y.backward()
    t = numpy.tanh([0.5, 1.0])
    numpy.testing.assert_allclose(x.grad.numpy(), (1 - numpy.tanh(t) ** 2) * (1 - t**2), rtol=1e-14)


def test_saved_arrays_are_released_by_backward():
    x = em.tensor([0.5, 1.0], dtype=em.float64, requires_grad=True)
    with gc_disabled():
        h = x.tanh()  # HyperbolicTangent saves its output array; the outer tanh saves its own output
        saved = weakref.ref(h.data)
        y = h.tanh().sum()
        del h
        assert saved() is not None  # kept alive only by the inner node, for backward
        y.backward()
        assert saved() is None  # released right after the node's backward
        assert y.grad_fn is not None  # while the graph object itself is still held


def test_retain_graph_keeps_saved_arrays_until_the_graph_is_dropped():
    x = em.tensor([0.5, 1.0], dtype=em.float64, requires_grad=True)
    with gc_disabled():
        h = x.tanh()
        saved = weakref.ref(h.data)
        y = h.tanh().sum()
        del h
        y.backward(retain_graph=True)
        assert saved() is not None
        del y
        assert saved() is None


def test_no_grad_forward_creates_no_nodes():
    x = em.tensor(numpy.ones((3, 4)), dtype=em.float64, requires_grad=True)
    with gc_disabled():
        before = live(Function)
        with em.no_grad():
            y = ((x * 2.0).tanh() @ x.T).sum()
        assert live(Function) == before
        assert y.grad_fn is None


def test_higher_order_graph_is_freed_without_gc():
    # autograd.grad(create_graph=True) builds a graph of the backward; it must not cycle either.
    x = em.tensor(numpy.linspace(-1, 1, 5), dtype=em.float64, requires_grad=True)
    with gc_disabled():
        tensors_before, nodes_before = live(Tensor), live(Function)
        y = (x.tanh() * x).sum()
        (g,) = em.autograd.grad(y, x, create_graph=True)
        (h,) = em.autograd.grad((g * g).sum(), x)
        rg = weakref.ref(g.grad_fn)
        del y, g
        assert rg() is None
        assert h.grad_fn is None
        del h
        assert live(Tensor) == tensors_before
        assert live(Function) == nodes_before


def test_live_tensor_and_function_counts_return_to_baseline():
    x = em.tensor(numpy.ones((4, 4)), dtype=em.float64, requires_grad=True)
    with gc_disabled():
        tensors_before, nodes_before = live(Tensor), live(Function)
        for _ in range(5):
            y, _ = small_graph(x)
            assert live(Function) > nodes_before
            y.backward()
            del y
        x.grad = None
        assert live(Tensor) == tensors_before
        assert live(Function) == nodes_before


def build_and_backprop(x: Tensor, w: Tensor, n_nodes: int) -> float:
    """A chain of ``n_nodes`` ops mixing unary, binary and matmul nodes, then backward."""
    y = x
    for i in range(n_nodes // 4):
        y = y @ w if i % 8 == 0 else y * 0.5
        y = y.tanh()
        y = y + x
        y = y.exp() * 0.1 if i % 2 else y - 0.25
    loss = y.sum()
    loss.backward()
    return loss.item()


def _flat_memory_check(n_nodes: int, iterations: int, warmup: int = 5) -> None:
    rng = numpy.random.default_rng(3)
    x = em.tensor(rng.normal(size=(4, 8)) * 0.1, dtype=em.float64, requires_grad=True)
    w = em.tensor(rng.normal(size=(8, 8)) * 0.3, dtype=em.float64, requires_grad=True)
    with gc_disabled():
        for _ in range(warmup):
            build_and_backprop(x, w, n_nodes)
        x.grad = w.grad = None
        rss_before = rss_bytes()
        objects_before = len(gc.get_objects())
        tensors_before, nodes_before = live(Tensor), live(Function)
        for _ in range(iterations):
            value = build_and_backprop(x, w, n_nodes)
            x.grad = w.grad = None
        rss_after = rss_bytes()
        assert live(Tensor) == tensors_before
        assert live(Function) == nodes_before
        # The loop leaves no tracked object behind (0 measured; slack for interpreter caches).
        assert len(gc.get_objects()) - objects_before <= 2
    assert numpy.isfinite(value)
    growth = rss_after - rss_before
    assert growth < 2 * 1024 * 1024, f"RSS grew by {growth / 2**20:.2f} MiB over {iterations} iterations"


def test_memory_flat_over_repeated_graphs():
    # The short form of the check (the full 200 iterations are marked slow below).
    _flat_memory_check(n_nodes=10_000, iterations=20)


@pytest.mark.slow
def test_memory_flat_over_200_graphs_of_10k_nodes():
    # The test: a 10,000-node graph built and back-propagated 200 times.
    _flat_memory_check(n_nodes=10_000, iterations=200)
