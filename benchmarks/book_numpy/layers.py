"""The book's dense layers (ch. 5-6): Affine, Relu, Sigmoid, Dropout, SoftmaxWithLoss.

Every layer keeps what its backward needs from the last forward and returns the
gradient with respect to its input; parameter gradients land in ``self.grads``.
Arrays keep the dtype they are given (the harness uses float32).
"""

from __future__ import annotations

import numpy as np


class Affine:
    """``y = x @ W + b`` with the book's layout ``W: (in, out)``; inputs of any rank are flattened."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.params = {"W": W, "b": b}
        self.grads: dict[str, np.ndarray] = {}
        self.x: np.ndarray | None = None
        self.x_shape: tuple = ()

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Flatten ``x`` to ``(N, in)`` and apply the affine map."""
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.params["W"] + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """``dW = x^T dout``, ``db = sum_n dout``, ``dx = dout W^T`` reshaped like the input."""
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return (dout @ self.params["W"].T).reshape(self.x_shape)


class Relu:
    """``max(x, 0)``; the gradient is blocked where ``x <= 0`` (the book's mask)."""

    params: dict = {}

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output; keeps what backward needs."""
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """The gradient with respect to the last forward's input."""
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid:
    """``1 / (1 + exp(-x))``; backward uses the stored output: ``dout * y * (1 - y)``."""

    params: dict = {}

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output; keeps what backward needs."""
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """The gradient with respect to the last forward's input."""
        return dout * self.out * (1 - self.out)


class Dropout:
    """The book's (non-inverted) dropout: a random mask in training, scaling by ``1 - ratio`` in eval."""

    params: dict = {}

    def __init__(self, ratio: float = 0.5, seed: int = 0):
        self.ratio = ratio
        self.rng = np.random.default_rng(seed)
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output; keeps what backward needs."""
        if train:
            self.mask = self.rng.random(x.shape, dtype=np.float32) > self.ratio
            return x * self.mask
        return x * (1.0 - self.ratio)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """The gradient with respect to the last forward's input."""
        return dout * self.mask


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy over the batch; ``t`` holds class indices or one-hot rows."""

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        """The loss (a Python float); keeps the probabilities and labels for backward."""
        shifted = x - x.max(axis=1, keepdims=True)  # overflow-safe softmax
        e = np.exp(shifted)
        self.y = e / e.sum(axis=1, keepdims=True)
        self.t = t.argmax(axis=1) if t.ndim == 2 else t
        n = x.shape[0]
        return float(-np.log(self.y[np.arange(n), self.t] + 1e-7).sum() / n)

    def backward(self, dout: float = 1.0) -> np.ndarray:
        """``(softmax(x) - onehot(t)) / N``."""
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        return dx * (dout / n)
