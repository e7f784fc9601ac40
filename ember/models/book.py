"""The book's fully connected networks: ``TwoLayerNet`` (ch. 4-5) and ``MultiLayerNet`` (ch. 6).

``MultiLayerNet`` is the book's ``MultiLayerNetExtend``: each hidden layer is
Affine -> [BatchNorm] -> activation -> [Dropout].  The book adds weight decay
to the loss (``0.5 * lambda * sum(W**2)`` over weights, not biases);
``regularization()`` returns that term so training code can add it.
"""

from __future__ import annotations

from typing import Any, Sequence

from ember import nn
from ember.models.init import init_layer
from ember.nn.fusion import linear_relu

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}") from None


def _flat_size(input_size: Any) -> int:
    if isinstance(input_size, int):
        return input_size
    size = 1
    for s in input_size:
        size *= int(s)
    return size


class TwoLayerNet(nn.Module):
    """Affine -> activation -> Affine, returning logits (the loss applies softmax).

    Args:
        input_size: features per sample (784 for MNIST) or an image shape, flattened.
        hidden_size: units of the hidden layer (the book uses 50).
        output_size: classes.
        weight_init_std: the book's N(0, 0.01^2) by default, or 'he'/'xavier'/'default'.
        activation: 'sigmoid' (ch. 4) or 'relu' (ch. 5).
    """

    def __init__(self, input_size: Any = 784, hidden_size: int = 50, output_size: int = 10,
                 weight_init_std: Any = 0.01, activation: str = "sigmoid"):
        super().__init__()
        self.flatten = nn.Flatten()
        self.affine1 = init_layer(nn.Linear(_flat_size(input_size), hidden_size), weight_init_std)
        self.act = _activation(activation)
        self.affine2 = init_layer(nn.Linear(hidden_size, output_size), weight_init_std)

    def forward(self, x: Any) -> Any:
        return self.affine2(linear_relu(self.affine1, self.act, self.flatten(x)))  # fused where allowed (nn.fusion)


class MultiLayerNet(nn.Module):
    """A deep MLP with optional batch norm, dropout and weight decay (the book's ch. 6 experiments).

    Args:
        input_size: features per sample or an image shape (flattened).
        hidden_size_list: units of each hidden layer, e.g. ``[100, 100, 100, 100, 100]``.
        output_size: classes.
        activation: 'relu' or 'sigmoid' (or 'tanh').
        weight_init_std: 'relu'/'he' (default), 'sigmoid'/'xavier', a number, or 'default'.
        weight_decay_lambda: the L2 coefficient of ``regularization()``.
        use_dropout, dropout_ratio: dropout after each hidden activation.
        use_batchnorm: batch norm between each hidden affine and its activation.
    """

    def __init__(self, input_size: Any = 784, hidden_size_list: Sequence[int] = (100, 100, 100, 100),
                 output_size: int = 10, activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0.0, use_dropout: bool = False, dropout_ratio: float = 0.5,
                 use_batchnorm: bool = False):
        super().__init__()
        if weight_decay_lambda < 0:
            raise ValueError(f"MultiLayerNet: weight_decay_lambda must be >= 0, got {weight_decay_lambda}")
        self.weight_decay_lambda = float(weight_decay_lambda)
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [_flat_size(input_size), *hidden_size_list]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers.append(init_layer(nn.Linear(fan_in, fan_out), weight_init_std))
            if use_batchnorm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(_activation(activation))
            if use_dropout:
                layers.append(nn.Dropout(dropout_ratio))
        layers.append(init_layer(nn.Linear(sizes[-1], output_size), weight_init_std))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.layers(x)

    def regularization(self) -> Any:
        """``0.5 * lambda * sum ||W||^2`` over the affine weights (0 when lambda is 0)."""
        if not self.weight_decay_lambda:
            return 0.0
        total = 0.0
        for m in self.modules():
            if isinstance(m, nn.Linear):
                total = total + (m.weight * m.weight).sum()
        return total * (0.5 * self.weight_decay_lambda)
