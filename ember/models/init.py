"""Weight-initialisation choices shared by the book's networks.

The book passes ``weight_init_std`` as a number (``0.01``) or a name: ``'relu'``/
``'he'`` gives ``sqrt(2 / fan_in)``, ``'sigmoid'``/``'xavier'`` gives
``sqrt(1 / fan_in)``; ``'default'`` keeps PyTorch's layer default.  Biases start
at zero, as in the book.
"""

from __future__ import annotations

import math
from typing import Any

from ember.nn import init as nn_init


def init_std(weight_init_std: Any, fan_in: int) -> float | None:
    """The normal std for a layer with ``fan_in`` inputs, or None for the layer default."""
    if isinstance(weight_init_std, str):
        key = weight_init_std.lower()
        if key in ("relu", "he", "kaiming"):
            return math.sqrt(2.0 / fan_in)
        if key in ("sigmoid", "xavier", "glorot"):
            return math.sqrt(1.0 / fan_in)
        if key == "default":
            return None
        raise ValueError(
            f"weight_init_std: expected a number or one of 'relu', 'he', 'sigmoid', 'xavier', 'default', "
            f"got {weight_init_std!r}"
        )
    std = float(weight_init_std)
    if std <= 0:
        raise ValueError(f"weight_init_std: expected a positive number, got {weight_init_std!r}")
    return std


def init_layer(layer: Any, weight_init_std: Any) -> Any:
    """Re-initialise a Linear/Conv2d layer in place: N(0, std^2) weights, zero bias."""
    std = init_std(weight_init_std, nn_init._calculate_fan_in_and_fan_out(layer.weight)[0])
    if std is None:
        return layer
    nn_init.normal_(layer.weight, 0.0, std)
    if layer.bias is not None:
        nn_init.zeros_(layer.bias)
    return layer


def glorot_uniform(layer: Any) -> Any:
    """Keras' default (Glorot/Xavier uniform, gain 1) with zero bias."""
    nn_init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn_init.zeros_(layer.bias)
    return layer
