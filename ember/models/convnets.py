"""The book's convolutional networks: ``SimpleConvNet`` (ch. 7) and ``DeepConvNet`` (ch. 8).

Layouts follow the book (NCHW); the final affine layers return logits.
"""

from __future__ import annotations

from typing import Any

from ember import nn
from ember.nn.fusion import conv_relu, linear_relu
from ember.backends.geometry import conv_output_size
from ember.models.init import init_layer


class SimpleConvNet(nn.Module):
    """conv -> relu -> pool(2x2, s2) -> affine -> relu -> affine.

    Args:
        input_dim: ``(C, H, W)`` of one sample, ``(1, 28, 28)`` for MNIST.
        conv_param: the book's dict: filter_num (30), filter_size (5), pad (0), stride (1).
        hidden_size: units of the hidden affine layer (100).
        output_size: classes (10).
        weight_init_std: the book's 0.01, or 'he'/'xavier'/'default'.
    """

    def __init__(self, input_dim: tuple = (1, 28, 28), conv_param: dict | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: Any = 0.01):
        super().__init__()
        p = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **(conv_param or {})}
        c, h, w = input_dim
        k = p["filter_size"]
        oh = conv_output_size(h, k, p["stride"], p["pad"])
        ow = conv_output_size(w, k, p["stride"], p["pad"])
        self.conv1 = init_layer(nn.Conv2d(c, p["filter_num"], k, stride=p["stride"], padding=p["pad"]),
                                weight_init_std)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, stride=2)
        self.flatten = nn.Flatten()
        pooled = p["filter_num"] * (oh // 2) * (ow // 2)
        self.affine1 = init_layer(nn.Linear(pooled, hidden_size), weight_init_std)
        self.relu2 = nn.ReLU()
        self.affine2 = init_layer(nn.Linear(hidden_size, output_size), weight_init_std)

    def forward(self, x: Any) -> Any:
        x = self.pool1(conv_relu(self.conv1, self.relu1, x))  # one fused op where allowed (ember.nn.fusion)
        return self.affine2(linear_relu(self.affine1, self.relu2, self.flatten(x)))


class DeepConvNet(nn.Module):
    """The book's ch. 8 network: six 3x3 convs in pairs with max pooling, He init, dropout 0.5.

    conv16-conv16-pool-conv32-conv32(pad 2)-pool-conv64-conv64-pool-affine50-dropout-affine-dropout.
    """

    def __init__(self, input_dim: tuple = (1, 28, 28), hidden_size: int = 50, output_size: int = 10,
                 weight_init_std: Any = "he", dropout_ratio: float = 0.5):
        super().__init__()
        c, h, w = input_dim
        specs = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]
        layers: list[nn.Module] = []
        for i, (filters, pad) in enumerate(specs):
            layers += [init_layer(nn.Conv2d(c, filters, 3, padding=pad), weight_init_std), nn.ReLU()]
            c = filters
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2, stride=2))
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"DeepConvNet: input {input_dim} is too small for three 2x2 poolings")
        layers += [
            nn.Flatten(),
            init_layer(nn.Linear(c * h * w, hidden_size), weight_init_std), nn.ReLU(), nn.Dropout(dropout_ratio),
            init_layer(nn.Linear(hidden_size, output_size), weight_init_std), nn.Dropout(dropout_ratio),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.layers(x)
