"""Tensor hooks: ``register_hook``, ``retain_grad``, ``register_post_accumulate_grad_hook``.

Where hooks live (so that they never keep a graph alive, and a graph never
keeps a dropped tensor alive):

* A non-leaf tensor's hooks live on its creator node (``grad_fn._hooks``),
  keyed by the tensor's output index, as PyTorch keeps them on ``grad_fn``.
  ``retain_grad`` stores only a weak reference to the tensor there.
* A leaf's hooks live on the leaf itself (the ``_hooks`` slot, unset until a
  first hook is registered).  The engine, only while some leaf carries hooks,
  first counts the graph edges that reach each hooked leaf, buffers the leaf's
  gradients until the last one has arrived, and then runs, in this order: the
  ``register_hook`` hooks on the summed gradient, the accumulation into
  ``.grad``, the post-accumulate hooks.  A leaf whose paths all delivered is
  finished at once (in the order leaves complete); one that some path never
  reached (a backward returned None for it) is finished when the walk ends.

Hooks run with gradients as Tensors; a hook may return a replacement gradient
of the same shape and dtype.  Handles (``RemovableHandle``) hold their hook
table weakly, as PyTorch's do.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

from ember.autograd.tensor import Tensor
from ember.errors import GraphError

_handle_ids = itertools.count()
# Leaf tensors currently carrying a hook table; the engine skips all leaf-hook work while 0.
_HOOKED_LEAVES = [0]


class HookTable(dict):
    """Hook id -> hook, in registration order (a dict that handles can refer to weakly)."""


class RemovableHandle:
    """Returned by every ``register_*hook``: ``handle.remove()`` unregisters the hook."""

    def __init__(self, table: HookTable):
        self.id = next(_handle_ids)
        self._table = weakref.ref(table)

    def remove(self) -> None:
        table = self._table()
        if table is not None:
            table.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def add_hook(table: HookTable, hook: Callable, prepend: bool = False) -> RemovableHandle:
    """Insert ``hook`` into ``table`` (at the front with ``prepend``) and return its handle."""
    if not callable(hook):
        raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
    handle = RemovableHandle(table)
    if prepend:
        items = list(table.items())
        table.clear()
        table[handle.id] = hook
        table.update(items)
    else:
        table[handle.id] = hook
    return handle


class LeafHooks:
    """The hook tables of one leaf tensor."""

    __slots__ = ("pre", "post")

    def __init__(self) -> None:
        self.pre = HookTable()  # register_hook: fn(grad) -> None or a new grad
        self.post = HookTable()  # register_post_accumulate_grad_hook: fn(tensor) -> None


class NodeHooks:
    """The hooks a node runs on its incoming gradients before its backward."""

    __slots__ = ("pre", "retain")

    def __init__(self) -> None:
        self.pre: dict[int, HookTable] = {}  # output index -> register_hook hooks
        self.retain: dict[int, Any] = {}  # output index -> weakref to a retain_grad tensor


def _leaf_hooks(t: Tensor) -> LeafHooks:
    hooks = getattr(t, "_hooks", None)
    if hooks is None:
        hooks = t._hooks = LeafHooks()
        _HOOKED_LEAVES[0] += 1
        weakref.finalize(t, _forget_leaf)
    return hooks


def _forget_leaf() -> None:
    _HOOKED_LEAVES[0] -= 1


def _node_hooks(t: Tensor) -> NodeHooks:
    fn = t.grad_fn
    if fn._hooks is None:
        fn._hooks = NodeHooks()
    return fn._hooks


def register_hook(t: Tensor, hook: Callable[[Tensor], Any]) -> RemovableHandle:
    """``t.register_hook(hook)``: ``hook(grad)`` runs on ``t``'s summed gradient; may return a new one."""
    if not t.requires_grad:
        raise GraphError(
            f"register_hook: cannot register a hook on a tensor of shape {tuple(t.shape)} that does not "
            "require grad"
        )
    if t.grad_fn is None:
        return add_hook(_leaf_hooks(t).pre, hook)
    table = _node_hooks(t).pre.setdefault(t._out_idx, HookTable())
    return add_hook(table, hook)


def register_post_accumulate_grad_hook(t: Tensor, hook: Callable[[Tensor], None]) -> RemovableHandle:
    """``hook(t)`` runs once per backward, after the leaf ``t``'s ``.grad`` holds its sum over all paths."""
    if not t.requires_grad:
        raise GraphError(
            "register_post_accumulate_grad_hook: cannot register a hook on a tensor that does not require grad"
        )
    if t.grad_fn is not None:
        raise GraphError(
            "register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered on non-leaf "
            f"tensors (this one was made by {type(t.grad_fn).__name__})"
        )
    return add_hook(_leaf_hooks(t).post, hook)


def retain_grad(t: Tensor) -> None:
    """Make a non-leaf ``t`` keep its gradient in ``.grad`` (a no-op on leaves, as in PyTorch)."""
    if not t.requires_grad:
        raise GraphError(
            f"retain_grad: can't retain_grad on a tensor of shape {tuple(t.shape)} that has requires_grad=False"
        )
    if t.grad_fn is None:
        return
    _node_hooks(t).retain[t._out_idx] = weakref.ref(t)


def retains_grad(t: Tensor) -> bool:
    """True for a non-leaf on which ``retain_grad()`` was called."""
    fn = t.grad_fn
    if fn is None or fn._hooks is None:
        return False
    ref = fn._hooks.retain.get(t._out_idx)
    return ref is not None and ref() is t


def _run_grad_hooks(table: HookTable, g: Any, where: str) -> Any:
    """Pass ``g`` (array or Tensor) through ``table``'s hooks; returns the same kind of value."""
    was_tensor = isinstance(g, Tensor)
    gt = g if was_tensor else Tensor._make(g)
    for hook in list(table.values()):
        new = hook(gt)
        if new is None:
            continue
        if not isinstance(new, Tensor):
            raise TypeError(f"{where}: a gradient hook must return None or a Tensor, got {type(new).__name__}")
        if tuple(new.shape) != tuple(gt.shape) or new.dtype != gt.dtype:
            raise GraphError(
                f"{where}: a gradient hook must return a gradient of shape {tuple(gt.shape)} and dtype "
                f"{gt.dtype}, got shape {tuple(new.shape)} and dtype {new.dtype}"
            )
        gt = new
    return gt if was_tensor else gt.data


def run_node_hooks(fn: Any, gys: list) -> list:
    """Apply the ``register_hook`` hooks, then ``retain_grad``, to a node's incoming gradients."""
    hooks = fn._hooks
    gys = list(gys)
    for i, table in hooks.pre.items():
        if table and gys[i] is not None:
            gys[i] = _run_grad_hooks(table, gys[i], f"{type(fn).__name__}Backward output {i}")
    for i, ref in hooks.retain.items():
        t = ref()
        if t is None or gys[i] is None:
            continue
        g = gys[i] if isinstance(gys[i], Tensor) else Tensor._make(gys[i].copy())
        t.grad = g if t.grad is None else t.grad + g
    return gys


class LeafTracker:
    """Counts the edges reaching each hooked leaf and buffers its gradient until all have arrived."""

    def __init__(self, expected: dict[int, list]):
        self.expected = expected  # id(leaf) -> [edges left, leaf, summed grad or None]

    @classmethod
    def build(cls, roots: Any) -> "LeafTracker | None":
        """Walk the graph once (iteratively); None when no hooked leaf is reachable."""
        expected: dict[int, list] = {}

        def reach(leaf: Tensor) -> None:
            if getattr(leaf, "_hooks", None) is None:
                return
            entry = expected.get(id(leaf))
            if entry is None:
                expected[id(leaf)] = [1, leaf, None]
            else:
                entry[0] += 1

        seen: set[int] = set()
        stack = []
        for t, _ in roots:
            if t.grad_fn is None:
                reach(t)
            elif id(t.grad_fn) not in seen:
                seen.add(id(t.grad_fn))
                stack.append(t.grad_fn)
        while stack:
            fn = stack.pop()
            for edge in fn._edges:
                if edge is None:
                    continue
                if type(edge) is not tuple:
                    reach(edge)
                elif id(edge[0]) not in seen:
                    seen.add(id(edge[0]))
                    stack.append(edge[0])
        return cls(expected) if expected else None

    def add(self, leaf: Tensor, g: Any, add: Callable) -> Any:
        """Buffer ``g``; returns the summed gradient when ``leaf`` is complete, else None.

        Leaves this tracker does not follow return ``g`` itself (delivered at once).
        """
        entry = self.expected.get(id(leaf))
        if entry is None:
            return g
        entry[2] = g if entry[2] is None else add(entry[2], g)
        entry[0] -= 1
        if entry[0] > 0:
            return None
        del self.expected[id(leaf)]
        return entry[2]

    def note_missing(self, leaf: Tensor) -> Any:
        """An edge to ``leaf`` carried no gradient; returns the sum if that completed the leaf."""
        entry = self.expected.get(id(leaf))
        if entry is None:
            return None
        entry[0] -= 1
        if entry[0] > 0:
            return None
        del self.expected[id(leaf)]
        return entry[2]

    def leftovers(self) -> list:
        """``(leaf, grad)`` for leaves some path never reached, in the order they were found."""
        out = [(leaf, g) for _, leaf, g in self.expected.values() if g is not None]
        self.expected.clear()
        return out


def leaf_pre_hooks(leaf: Tensor, g: Any) -> Any:
    """Run a leaf's ``register_hook`` hooks on its summed gradient."""
    hooks = getattr(leaf, "_hooks", None)
    if hooks is None or not hooks.pre:
        return g
    return _run_grad_hooks(hooks.pre, g, f"leaf of shape {tuple(leaf.shape)}")


def leaf_post_hooks(leaf: Tensor) -> None:
    """Run a leaf's post-accumulate hooks (after its ``.grad`` was updated)."""
    hooks = getattr(leaf, "_hooks", None)
    if hooks is None:
        return
    for hook in list(hooks.post.values()):
        if hook(leaf) is not None:
            raise GraphError("register_post_accumulate_grad_hook: post accumulate grad hooks must return None")
