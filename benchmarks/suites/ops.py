"""``ops``: single ops at several sizes: matmul, conv2d, max pooling, softmax-CE, im2col/col2im.

Folds in the earlier ``kernels_numpy.py`` (im2col/col2im at the SimpleConvNet
shapes, now on every target: ember's backend kernels, ``F.unfold``/``F.fold``,
the book's im2col).  matmul and conv2d cases carry FLOPs and bytes for the
roofline columns.
"""

from __future__ import annotations

from benchmarks.suites import work

TITLE = "Single ops (float32)"
DISPLAY = "time"


def _matmul(n: int, mode: str) -> dict:
    """A square matmul case with its FLOPs and bytes."""
    return {"name": f"matmul {n}x{n}x{n} {mode}", "kind": "op", "group": "matmul", "x": n,
            "params": {"op": "matmul", "a": [n, n], "b": [n, n], "mode": mode},
            "items": 1, "item": "call", "work": work.matmul((n, n), (n, n), mode)}


def _conv(label: str, x: list, w: list, pad: int, mode: str) -> dict:
    """A conv2d case (stride 1) with its FLOPs and bytes."""
    return {"name": f"conv2d {label} {mode}", "kind": "op", "group": "conv2d",
            "params": {"op": "conv2d", "x": x, "w": w, "stride": 1, "pad": pad, "mode": mode},
            "items": 1, "item": "call", "work": work.conv2d(tuple(x), tuple(w), 1, pad, mode)}


def _pool(x: list) -> dict:
    """A 2x2 stride-2 max-pooling fwd+bwd case."""
    return {"name": f"max_pool2d {x} 2x2 fwd+bwd", "kind": "op", "group": "pool",
            "params": {"op": "max_pool2d", "x": x, "k": 2, "stride": 2, "mode": "fwd+bwd"},
            "items": 1, "item": "call"}


def _ce(n: int, c: int) -> dict:
    """A softmax-cross-entropy fwd+bwd case on (n, c) logits."""
    return {"name": f"softmax_ce ({n}, {c}) fwd+bwd", "kind": "op", "group": "softmax_ce",
            "params": {"op": "softmax_ce", "x": [n, c], "mode": "fwd+bwd"}, "items": 1, "item": "call"}


def _kernel(kernel: str, x: list, k: int, pad: int) -> dict:
    """A raw im2col or col2im kernel case (no autograd)."""
    return {"name": f"{kernel} {x} k{k} p{pad}", "kind": "kernel", "group": "im2col",
            "params": {"kernel": kernel, "x": x, "k": k, "stride": 1, "pad": pad}, "items": 1, "item": "call"}


def cases(quick: bool) -> list[dict]:
    """Quick: one small size per op; full: the SimpleConvNet/DeepConvNet shapes at batch 100 and larger."""
    if quick:
        return [
            _matmul(64, "fwd+bwd"), _matmul(256, "fwd+bwd"),
            _conv("SimpleConvNet.conv1 b32", [32, 1, 28, 28], [30, 1, 5, 5], 0, "fwd+bwd"),
            _pool([32, 30, 24, 24]), _ce(100, 10),
            _kernel("im2col", [32, 1, 28, 28], 5, 0), _kernel("col2im", [32, 1, 28, 28], 5, 0),
        ]
    return [
        _matmul(64, "fwd+bwd"), _matmul(256, "fwd+bwd"), _matmul(1024, "fwd"), _matmul(1024, "fwd+bwd"),
        _conv("SimpleConvNet.conv1 b100", [100, 1, 28, 28], [30, 1, 5, 5], 0, "fwd"),
        _conv("SimpleConvNet.conv1 b100", [100, 1, 28, 28], [30, 1, 5, 5], 0, "fwd+bwd"),
        _conv("DeepConvNet.conv2 b100", [100, 16, 28, 28], [16, 16, 3, 3], 1, "fwd+bwd"),
        _conv("64ch 32x32 b32", [32, 64, 32, 32], [64, 64, 3, 3], 1, "fwd+bwd"),
        _pool([100, 30, 24, 24]), _ce(100, 10), _ce(1000, 1000),
        _kernel("im2col", [100, 1, 28, 28], 5, 0), _kernel("col2im", [100, 1, 28, 28], 5, 0),
        _kernel("im2col", [100, 16, 28, 28], 3, 1), _kernel("col2im", [100, 16, 28, 28], 3, 1),
    ]
