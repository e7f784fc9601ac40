"""Networks assembled from the book's layers, with the same shapes as ember's models.

``build_net(name, ...)`` makes the harness's four models (TwoLayerNet, the
784-512-512-10 MLP, SimpleConvNet, DeepConvNet) as a ``BookNet``: an ordered
list of layers plus ``SoftmaxWithLoss``, trained by ``gradient`` + an optimizer's
``update`` exactly as in the book's ``train_neuralnet.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.book_numpy.conv import Convolution, Pooling
from benchmarks.book_numpy.layers import Affine, Dropout, Relu, Sigmoid, SoftmaxWithLoss


class BookNet:
    """Layers applied in order; parameters are addressed as ``"<layer index>.<W|b>"``."""

    def __init__(self, layers: list):
        self.layers = layers
        self.last = SoftmaxWithLoss()
        self.params = {f"{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.params.items()}

    def predict(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The logits; ``train`` switches dropout to its training behaviour."""
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray, train: bool = True) -> float:
        """Mean cross-entropy of the network's prediction for ``x`` against ``t``."""
        return self.last.forward(self.predict(x, train), t)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict:
        """Forward in training mode, then back-propagate; returns grads keyed like ``params``."""
        self.loss(x, t, train=True)
        dout = self.last.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return {f"{i}.{k}": g for i, layer in enumerate(self.layers) for k, g in getattr(layer, "grads", {}).items()}


def _normal(rng: np.random.Generator, shape: tuple, std: float, dtype: Any) -> np.ndarray:
    """Seeded N(0, std^2) weights in ``dtype``."""
    return (std * rng.standard_normal(shape)).astype(dtype)


def _affine(rng: Any, fan_in: int, fan_out: int, std: float, dtype: Any) -> Affine:
    """An Affine layer with N(0, std^2) weights and zero bias."""
    return Affine(_normal(rng, (fan_in, fan_out), std, dtype), np.zeros(fan_out, dtype=dtype))


def _conv(rng: Any, c: int, fn: int, k: int, std: float, dtype: Any, pad: int = 0) -> Convolution:
    """A Convolution layer (stride 1) with N(0, std^2) filters and zero bias."""
    return Convolution(_normal(rng, (fn, c, k, k), std, dtype), np.zeros(fn, dtype=dtype), 1, pad)


def build_net(name: str, input_dim: tuple = (1, 28, 28), num_classes: int = 10, hidden: int | None = None,
              dtype: Any = np.float32, seed: int = 0, activation: str = "relu") -> BookNet:
    """One of ``two_layer_net``, ``mlp``, ``simple_convnet``, ``deep_convnet`` for inputs ``input_dim``."""
    rng = np.random.default_rng(seed)
    c, h, w = input_dim
    act = Relu if activation == "relu" else Sigmoid
    if name in ("two_layer_net", "mlp"):
        sizes = [c * h * w, *([hidden or 50] if name == "two_layer_net" else [512, 512])]
        layers: list = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [_affine(rng, fan_in, fan_out, np.sqrt(2.0 / fan_in), dtype), act()]
        layers.append(_affine(rng, sizes[-1], num_classes, np.sqrt(2.0 / sizes[-1]), dtype))
        return BookNet(layers)
    if name == "simple_convnet":
        fn, k, hid = 30, 5, hidden or 100
        oh, ow = h - k + 1, w - k + 1
        return BookNet([
            _conv(rng, c, fn, k, 0.01, dtype), Relu(), Pooling(2, 2, stride=2),
            _affine(rng, fn * (oh // 2) * (ow // 2), hid, 0.01, dtype), Relu(),
            _affine(rng, hid, num_classes, 0.01, dtype),
        ])
    if name == "deep_convnet":
        layers = []
        for i, (fn, pad) in enumerate([(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]):
            layers += [_conv(rng, c, fn, 3, np.sqrt(2.0 / (c * 9)), dtype, pad), Relu()]
            c, h, w = fn, h + 2 * pad - 2, w + 2 * pad - 2
            if i % 2 == 1:
                layers.append(Pooling(2, 2, stride=2))
                h, w = h // 2, w // 2
        hid = hidden or 50
        layers += [_affine(rng, c * h * w, hid, np.sqrt(2.0 / (c * h * w)), dtype), Relu(), Dropout(0.5, seed),
                   _affine(rng, hid, num_classes, np.sqrt(2.0 / hid), dtype), Dropout(0.5, seed + 1)]
        return BookNet(layers)
    raise ValueError(f"build_net: unknown network {name!r}; expected two_layer_net, mlp, simple_convnet, "
                     "deep_convnet")
