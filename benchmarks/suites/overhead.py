"""``overhead``: per-op dispatch cost, the chain of ``benchmarks.dispatch`` as a suite.

A chain of elementwise ops (``x * 0.9``, ``x + 0.1``, ``tanh``, ``exp``) on a
one-element tensor: the arithmetic is free, so time per op is the framework's
own overhead.  On the book-NumPy target the chain is the NumPy floor (bare
ufunc calls, backward by hand).
"""

from __future__ import annotations

TITLE = "Per-op dispatch overhead (chain of elementwise ops on a 1-element tensor)"
DISPLAY = "per_item_us"
MODES = ("fwd+bwd", "fwd", "fwd no_grad")


def cases(quick: bool) -> list[dict]:
    """One case per mode; the chain is 1,000 ops long (200 with ``--quick``)."""
    n_ops = 200 if quick else 1000
    return [{"name": f"chain {mode}", "kind": "chain", "params": {"n_ops": n_ops, "mode": mode},
             "items": n_ops, "item": "op", "group": "chain"} for mode in MODES]
