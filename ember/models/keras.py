"""The Keras MNIST examples' networks, with Keras' Glorot-uniform init and zero biases.

``KerasMLP``: Dense(512, relu) -> Dropout(0.2) -> Dense(512, relu) -> Dropout(0.2) -> Dense(10).
``KerasCNN``: Conv(32, 3x3, relu) -> Conv(64, 3x3, relu) -> MaxPool(2) -> Dropout(0.25)
-> Dense(128, relu) -> Dropout(0.5) -> Dense(10).  Both return logits.
"""

from __future__ import annotations

from typing import Any

from ember import nn
from ember.models.init import glorot_uniform


class KerasMLP(nn.Module):
    """784-512-512-10 MLP with dropout 0.2."""

    def __init__(self, input_dim: Any = (1, 28, 28), hidden_size: int = 512, output_size: int = 10,
                 dropout_ratio: float = 0.2):
        super().__init__()
        size = input_dim if isinstance(input_dim, int) else int(__import__("math").prod(input_dim))
        self.layers = nn.Sequential(
            nn.Flatten(),
            glorot_uniform(nn.Linear(size, hidden_size)), nn.ReLU(), nn.Dropout(dropout_ratio),
            glorot_uniform(nn.Linear(hidden_size, hidden_size)), nn.ReLU(), nn.Dropout(dropout_ratio),
            glorot_uniform(nn.Linear(hidden_size, output_size)),
        )

    def forward(self, x: Any) -> Any:
        return self.layers(x)


class KerasCNN(nn.Module):
    """Two 3x3 convs, 2x2 max pooling, dense 128, dropout 0.25/0.5."""

    def __init__(self, input_dim: tuple = (1, 28, 28), output_size: int = 10):
        super().__init__()
        c, h, w = input_dim
        if h < 6 or w < 6:
            raise ValueError(f"KerasCNN: input {input_dim} is too small for two 3x3 convs and a 2x2 pool")
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        self.layers = nn.Sequential(
            glorot_uniform(nn.Conv2d(c, 32, 3)), nn.ReLU(),
            glorot_uniform(nn.Conv2d(32, 64, 3)), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
            glorot_uniform(nn.Linear(flat, 128)), nn.ReLU(), nn.Dropout(0.5),
            glorot_uniform(nn.Linear(128, output_size)),
        )

    def forward(self, x: Any) -> Any:
        return self.layers(x)
