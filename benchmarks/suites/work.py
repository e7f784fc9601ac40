"""FLOPs and compulsory bytes per call, for the roofline columns of matmul, conv and training cases.

FLOPs count a multiply-add as 2.  A training step is counted as 3x the forward
(forward, input gradient, weight gradient), the convention behind the issue's
"SimpleConvNet step is about 0.52 GFLOP at batch 100".  Bytes are the
compulsory traffic: every operand read once and every result written once.
"""

from __future__ import annotations

from math import prod

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2}


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a window of ``k`` sliding with ``stride`` over ``size + 2 pad``."""
    return (size + 2 * pad - k) // stride + 1


def matmul(a: tuple, b: tuple, mode: str, dtype: str = "float32") -> dict:
    """Work of ``(m, k) @ (k, n)``; backward adds ``gA = gy B^T`` and ``gB = A^T gy``."""
    (m, k), (_, n) = a, b
    flops = 2.0 * m * k * n
    elems = m * k + k * n + m * n
    if mode == "fwd+bwd":
        flops *= 3
        elems += m * n + 2 * (m * k + k * n)
    return {"flops": flops, "bytes": float(elems * ITEMSIZE[dtype])}


def conv2d(x: tuple, w: tuple, stride: int, pad: int, mode: str, dtype: str = "float32") -> dict:
    """Work of a 2-D convolution; backward adds ``gx`` and ``gW`` (each as many FLOPs as the forward)."""
    n, c, h, wd = x
    oc, _, kh, kw = w
    oh, ow = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    flops = 2.0 * n * oc * c * kh * kw * oh * ow
    xs, ws, ys = prod(x), prod(w), n * oc * oh * ow
    elems = xs + ws + ys
    if mode == "fwd+bwd":
        flops *= 3
        elems += ys + 2 * (xs + ws)
    return {"flops": flops, "bytes": float(elems * ITEMSIZE[dtype])}


def model_forward_flops(model: str, batch: int, input_dim: tuple = (1, 28, 28), classes: int = 10) -> float:
    """Forward FLOPs of one of the harness's models (convolutions and affine layers only)."""
    c, h, w = input_dim
    if model == "two_layer_net":
        return 2.0 * batch * (c * h * w * 50 + 50 * classes)
    if model == "mlp":
        return 2.0 * batch * (c * h * w * 512 + 512 * 512 + 512 * classes)
    if model == "simple_convnet":
        oh, ow = h - 4, w - 4
        conv = 2.0 * batch * 30 * c * 25 * oh * ow
        return conv + 2.0 * batch * (30 * (oh // 2) * (ow // 2) * 100 + 100 * classes)
    total = 0.0
    for i, (f, pad) in enumerate([(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]):
        h, w = h + 2 * pad - 2, w + 2 * pad - 2
        total += 2.0 * batch * f * c * 9 * h * w
        c = f
        if i % 2 == 1:
            h, w = h // 2, w // 2
    return total + 2.0 * batch * (c * h * w * 50 + 50 * classes)


def train_work(model: str, batch: int, input_dim: tuple = (1, 28, 28)) -> dict:
    """FLOPs of one training step (3x forward); bytes are not modelled for whole networks."""
    return {"flops": 3.0 * model_forward_flops(model, batch, input_dim)}


def infer_work(model: str, batch: int, input_dim: tuple = (1, 28, 28)) -> dict:
    """FLOPs of one forward pass."""
    return {"flops": model_forward_flops(model, batch, input_dim)}
