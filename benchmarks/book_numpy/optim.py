"""The book's optimizers (ch. 6) updating a dict of parameter arrays in place."""

from __future__ import annotations

import numpy as np


class SGD:
    """``W -= lr * dW``."""

    def __init__(self, lr: float = 0.01):
        self.lr = lr

    def update(self, params: dict, grads: dict) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        for key, p in params.items():
            p -= self.lr * grads[key]


class Adam:
    """Adam with the bias correction folded into the step size, as the book writes it."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.iter = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def update(self, params: dict, grads: dict) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        if not self.m:
            for key, p in params.items():
                self.m[key] = np.zeros_like(p)
                self.v[key] = np.zeros_like(p)
        self.iter += 1
        # A Python float, not np.float64: NumPy 2 would otherwise promote float32 updates to float64.
        lr_t = float(self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter))
        for key, p in params.items():
            g = grads[key]
            self.m[key] += (1 - self.beta1) * (g - self.m[key])
            self.v[key] += (1 - self.beta2) * (g * g - self.v[key])
            p -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + self.eps)
