"""The backward engine: generation-ordered traversal of the recorded graph.

Nodes are popped from a heap keyed ``(-generation, seq)``: a node's generation
exceeds that of every node producing its inputs, so when a node is popped all
of its consumers have already sent their gradients (the sum over all paths of
a diamond arrives complete).  A node that becomes pending while the heap is empty
is the only candidate, so it runs next without the heap (a chain's common case).
No recursion, so a 10k-deep chain is fine.

After each node's backward the engine reduces broadcast gradients back to the
input's shape and checks shape and dtype, naming the op that got it wrong
(Chainer's ``_check_grad_type``).
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable, Sequence

import numpy
from numpy import ndarray

from ember.autograd import capture as _capture
from ember.autograd import function as _function
from ember.autograd import hooks as _hooks
from ember.autograd.function import _FREED, Function
from ember.autograd.grad_mode import _GRAD_ENABLED
from ember.autograd.tensor import Tensor
from ember.backends.arrays import sum_to
from ember.errors import GraphError, ShapeError

# The Tensor-level ``xp`` a ``create_graph`` backward runs on.  ember.autograd.tensor_ops
# installs itself here when imported (``ember.autograd`` imports it), so the engine
# never imports the ops that are built on it.
tensor_namespace: Any = None


def run_backward(
    roots: Sequence[tuple[Any, Any]],
    retain_graph: bool,
    create_graph: bool,
    capture: Sequence[Any] | None = None,
) -> list | None:
    """Back-propagate ``(tensor, grad)`` pairs through the graph.

    Args:
        roots: output tensors with the gradient flowing into each (arrays, or
            Tensors when ``create_graph``).
        retain_graph: keep saved values so the graph can be walked again.
        create_graph: run backwards on Tensors so the gradients are differentiable.
        capture: if given, the tensors whose gradients to return instead of
            accumulating into leaves' ``.grad`` (``autograd.grad``).

    Returns:
        With ``capture``, one gradient (Tensor or None) per captured tensor.
    """
    rec = _capture.RECORDER[0]
    if rec is not None and rec.depth == 0:
        if create_graph or capture is not None or _hooks._HOOKED_LEAVES[0]:
            raise _capture.CaptureError(
                "backward: a captured step supports plain loss.backward() only (no create_graph, "
                "autograd.grad or leaf hooks); run it eagerly instead of compiling it"
            )
    elif rec is not None:
        rec = None
    leaf_slot: dict[int, int] = {}
    node_slot: dict[tuple[int, int], int] = {}
    captured: list = []
    if capture is not None:
        captured = [None] * len(capture)
        for k, t in enumerate(capture):
            if t.grad_fn is None:
                leaf_slot[id(t)] = k
            else:
                node_slot[(id(t.grad_fn), t._out_idx)] = k

    # Leaf hooks need each leaf's gradient summed over all paths first: only while some
    # leaf carries hooks, count the edges reaching each hooked leaf (see ember.autograd.hooks).
    tracker = _hooks.LeafTracker.build(roots) if _hooks._HOOKED_LEAVES[0] else None

    def deliver_to_leaf(leaf: Any, g: Any) -> None:
        if tracker is not None:
            g = tracker.add(leaf, g, _add)
            if g is not None:
                finish_leaf(leaf, g)
            return
        finish_leaf(leaf, g)

    def finish_leaf(leaf: Any, g: Any) -> None:
        if capture is not None:
            k = leaf_slot.get(id(leaf))
            if k is not None:  # hooks run only on captured leaves, as PyTorch's autograd.grad does
                if tracker is not None:
                    g = _hooks.leaf_pre_hooks(leaf, g)
                captured[k] = g if captured[k] is None else _add(captured[k], g)
            return
        if tracker is not None:
            g = _hooks.leaf_pre_hooks(leaf, g)
        if not isinstance(g, Tensor):
            g = Tensor._make(g)
        accumulate_into(leaf, g)
        if tracker is not None:
            _hooks.leaf_post_hooks(leaf)

    # pending: node -> its incoming gradient (a one-output node) or list of gradients (several
    # outputs).  A node becomes pending when its first gradient arrives and is then scheduled:
    # on the heap, or, when it is the only pending node left (a chain), as ``nxt``, which
    # skips the heap round trip and its key tuple.
    pending: dict[Function, Any] = {}
    heap: list = []
    nxt = None
    plain = not node_slot and not create_graph and rec is None
    token = _GRAD_ENABLED.set(create_graph)
    callbacks = _hooks.open_callbacks()  # hooks.queue_callback appends here during this backward
    try:
        for t, g in roots:
            fn = t.grad_fn
            if fn is None:
                deliver_to_leaf(t, g)
                continue
            if fn not in pending:
                pending[fn] = None if fn._n_out == 1 else [None] * fn._n_out
                heappush(heap, (-fn.generation, fn._seq, fn))
            i = t._out_idx
            if fn._n_out == 1:
                pending[fn] = g if pending[fn] is None else _add(pending[fn], g)
            else:
                slots = pending[fn]
                slots[i] = g if slots[i] is None else _add(slots[i], g)

        # The loop below runs once per node: it inlines the common case (one output, no
        # hooks, array gradients of the right shape and dtype) and calls helpers otherwise.
        while True:
            if nxt is not None:
                fn = nxt
                nxt = None
            elif heap:
                fn = heappop(heap)[2]
            else:
                break
            gys = pending.pop(fn)
            edges = fn._edges
            info = fn._saved_info  # non-empty exactly when the node saved values
            if plain and fn._n_out == 1 and fn._hooks is None and _function._anomaly_hooks is None:
                if info and (len(info) != 3 or (info[1] is not None and info[1][0] != info[2])):
                    fn._check_versions()  # several saved values, or one edited in place: the full check
                gxs = fn.backward(fn, gys)
                if type(gxs) is not tuple:
                    gxs = (gxs,)
                elif len(gxs) > len(edges):
                    _raise_too_many(fn, gxs)
            else:
                if fn._n_out == 1:
                    gys = [gys]
                if fn._hooks is not None:  # register_hook / retain_grad on this node's outputs
                    gys = _hooks.run_node_hooks(fn, gys)
                if node_slot:
                    for i, g in enumerate(gys):
                        k = node_slot.get((id(fn), i))
                        if k is not None:
                            captured[k] = g
                if len(gys) > 1:
                    gys = _fill_missing(fn, gys, create_graph)
                anomaly_hooks = _function._anomaly_hooks  # ember.autograd.detect_anomaly
                if anomaly_hooks is not None:
                    gxs = anomaly_hooks[1](_call_backward, fn, gys, create_graph)
                else:
                    gxs = _call_backward(fn, gys, create_graph)
                if rec is not None:  # ember.compile: record this node's backward on the tape
                    gxs = rec.backward(fn, gys, gxs)
            if info and not retain_graph:
                fn._saved = _FREED
            deferred = None  # the first node this one made pending
            for edge, gx in zip(edges, gxs):
                if edge is None or gx is None:
                    if tracker is not None and edge is not None and type(edge) is not tuple:
                        done = tracker.note_missing(edge)
                        if done is not None:
                            finish_leaf(edge, done)
                    continue
                if type(edge) is not tuple:  # a leaf Tensor
                    data = edge.data
                    checked = _checked(fn, gx, data.shape, data.dtype)
                    if rec is not None:
                        rec.reduce_to(gx, checked, data.shape)
                        rec.deliver(edge, checked)
                    deliver_to_leaf(edge, checked)
                    continue
                parent, i = edge
                shape = parent._out_shape
                if shape is None:
                    shape, dtype = parent._multi_meta[i]
                else:
                    dtype = parent._out_dtype
                if type(gx) is not ndarray or gx.shape != shape or (gx.dtype is not dtype and gx.dtype != dtype):
                    checked = _checked(fn, gx, shape, dtype)
                    if rec is not None:
                        rec.reduce_to(gx, checked, shape)
                    gx = checked
                if parent._n_out == 1:
                    before = pending.get(parent)
                    if before is not None:
                        total = _add(before, gx)
                        if rec is not None:
                            rec.add(before, gx, total)
                        pending[parent] = total
                        continue
                    pending[parent] = gx
                else:
                    slots = pending.get(parent)
                    if slots is not None:
                        if slots[i] is None:
                            slots[i] = gx
                        else:
                            total = _add(slots[i], gx)
                            if rec is not None:
                                rec.add(slots[i], gx, total)
                            slots[i] = total
                        continue
                    slots = pending[parent] = [None] * parent._n_out
                    slots[i] = gx
                if deferred is None:
                    deferred = parent
                else:
                    heappush(heap, (-parent.generation, parent._seq, parent))
            if deferred is not None:
                if heap:
                    heappush(heap, (-deferred.generation, deferred._seq, deferred))
                else:
                    nxt = deferred
        if tracker is not None:  # hooked leaves that some path left without a gradient
            for leaf, g in tracker.leftovers():
                finish_leaf(leaf, g)
        while callbacks:  # queue_callback: after every gradient of this backward is delivered
            callbacks.pop(0)()
    finally:
        _hooks.close_callbacks()
        _GRAD_ENABLED.reset(token)
    return captured if capture is not None else None


def _add(a: Any, b: Any) -> Any:
    """``a + b`` for gradients; keeps 0-d results arrays (NumPy would return scalars)."""
    s = a + b
    return numpy.asarray(s) if isinstance(s, numpy.generic) else s


def accumulate_into(leaf: Any, g: Any) -> None:
    """``leaf.grad = g``, or ``leaf.grad + g`` when it already holds a gradient (also used by replay)."""
    leaf.grad = g if leaf.grad is None else _accumulate_leaf(leaf.grad, g)


def _accumulate_leaf(old: Any, g: Any) -> Any:
    if g.requires_grad or old.requires_grad:
        return old + g
    return Tensor._make(_add(old.data, g.data))


def _call_backward(fn: Function, gys: list, create_graph: bool) -> tuple:
    if fn._saved_info:
        fn._check_versions()
    if create_graph:
        gys = [g if isinstance(g, Tensor) else Tensor._make(g) for g in gys]
        array_xp = fn.xp
        fn.xp, fn._create_graph = tensor_namespace, True
        try:
            gxs = fn.backward(fn, *gys)
        finally:
            fn.xp, fn._create_graph = array_xp, False
    else:
        gxs = fn.backward(fn, *gys)
    if type(gxs) is not tuple:
        return (gxs,)
    if len(gxs) > len(fn._edges):
        _raise_too_many(fn, gxs)
    return gxs


def _raise_too_many(fn: Function, gxs: tuple) -> None:
    raise GraphError(
        f"{type(fn).__name__}.backward: expected at most {len(fn._edges)} gradients "
        f"(one per forward argument), got {len(gxs)}"
    )


def _checked(fn: Function, gx: Any, shape: tuple, dtype: Any) -> Any:
    """Reduce a broadcast gradient to ``shape`` and verify shape and dtype."""
    if isinstance(gx, numpy.generic):  # NumPy turns 0-d results into scalars
        gx = numpy.asarray(gx)
    gshape = tuple(gx.shape)
    if gshape != shape:
        try:
            gx = sum_to(gx, shape)
        except ValueError:
            raise ShapeError(
                f"{type(fn).__name__}.backward: expected a gradient of shape {shape} "
                f"(or one broadcast from it), got {gshape}"
            ) from None
    if gx.dtype != dtype:
        raise GraphError(
            f"{type(fn).__name__}.backward: expected a gradient of dtype {dtype}, got {gx.dtype}"
        )
    return gx


def _fill_missing(fn: Function, gys: list, create_graph: bool) -> list:
    """Zeros for outputs of a multi-output node that received no gradient."""
    out = []
    for g, (shape, dtype) in zip(gys, fn._multi_meta):
        if g is None:
            g = fn.backend.xp.zeros(shape, dtype=dtype)
        out.append(g)
    return out
