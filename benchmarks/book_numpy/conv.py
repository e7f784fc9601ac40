"""The book's convolution and max pooling (ch. 7), via im2col in the book's matrix layout.

``im2col`` turns ``x: (N, C, H, W)`` into a matrix ``(N*OH*OW, C*FH*FW)``: one row
per output pixel, one column per weight of a filter, filled by ``FH*FW`` strided
slice copies (a loop over kernel offsets, not over pixels).  Convolution is then
one GEMM with the filters as columns, and pooling a row-wise max.  ``col2im`` is
the adjoint: it scatters-adds the rows back, summing overlapping windows.
"""

from __future__ import annotations

import numpy as np


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length along one axis."""
    return (size + 2 * pad - k) // stride + 1


def im2col(x: np.ndarray, fh: int, fw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Unfold ``x: (N, C, H, W)`` into ``(N*OH*OW, C*fh*fw)``."""
    n, c, h, w = x.shape
    oh, ow = _out_size(h, fh, stride, pad), _out_size(w, fw, stride, pad)
    img = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    col = np.empty((n, c, fh, fw, oh, ow), dtype=x.dtype)
    for i in range(fh):
        i_end = i + stride * oh
        for j in range(fw):
            col[:, :, i, j] = img[:, :, i:i_end:stride, j:j + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(col: np.ndarray, x_shape: tuple, fh: int, fw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Fold ``(N*OH*OW, C*fh*fw)`` rows back into ``x_shape``, adding overlaps (the adjoint of im2col)."""
    n, c, h, w = x_shape
    oh, ow = _out_size(h, fh, stride, pad), _out_size(w, fw, stride, pad)
    blocks = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
    for i in range(fh):
        i_end = i + stride * oh
        for j in range(fw):
            img[:, :, i:i_end:stride, j:j + stride * ow:stride] += blocks[:, :, i, j]
    return img[:, :, pad:h + pad, pad:w + pad]


class Convolution:
    """``W: (FN, C, FH, FW)``, ``b: (FN,)``; forward is ``im2col(x) @ W_col^T + b``."""

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0):
        self.params = {"W": W, "b": b}
        self.grads: dict[str, np.ndarray] = {}
        self.stride, self.pad = stride, pad
        self.x_shape: tuple = ()
        self.col: np.ndarray | None = None
        self.col_W: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output (NCHW); keeps what backward needs."""
        W = self.params["W"]
        fn, _, fh, fw = W.shape
        n, _, h, w = x.shape
        oh, ow = _out_size(h, fh, self.stride, self.pad), _out_size(w, fw, self.stride, self.pad)
        self.x_shape = x.shape
        self.col = im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = W.reshape(fn, -1).T
        out = self.col @ self.col_W + self.params["b"]
        return out.reshape(n, oh, ow, fn).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """``dW = col^T dout``, ``db = sum dout``, ``dx = col2im(dout W_col^T)``."""
        W = self.params["W"]
        fn, c, fh, fw = W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.grads["b"] = dout.sum(axis=0)
        self.grads["W"] = (self.col.T @ dout).T.reshape(fn, c, fh, fw)
        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x_shape, fh, fw, self.stride, self.pad)


class Pooling:
    """Max pooling over ``ph x pw`` windows; backward routes each gradient to its window's argmax."""

    params: dict = {}

    def __init__(self, ph: int, pw: int, stride: int = 1, pad: int = 0):
        self.ph, self.pw, self.stride, self.pad = ph, pw, stride, pad
        self.x_shape: tuple = ()
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output (NCHW); keeps what backward needs."""
        n, c, h, w = x.shape
        oh, ow = _out_size(h, self.ph, self.stride, self.pad), _out_size(w, self.pw, self.stride, self.pad)
        col = im2col(x, self.ph, self.pw, self.stride, self.pad).reshape(-1, self.ph * self.pw)
        self.x_shape = x.shape
        self.arg_max = col.argmax(axis=1)
        out = col[np.arange(col.shape[0]), self.arg_max]
        return out.reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        size = self.ph * self.pw
        dout = dout.transpose(0, 2, 3, 1)
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return col2im(dcol, self.x_shape, self.ph, self.pw, self.stride, self.pad)
