"""The seed material's networks as plain Modules, and a name registry for the CLI."""

from __future__ import annotations

from typing import Any

from ember.models.book import MultiLayerNet, TwoLayerNet
from ember.models.convnets import DeepConvNet, SimpleConvNet
from ember.models.keras import KerasCNN, KerasMLP

MODELS = {
    "simple_convnet": SimpleConvNet,
    "deep_convnet": DeepConvNet,
    "two_layer_net": TwoLayerNet,
    "multi_layer_net": MultiLayerNet,
    "keras_mlp": KerasMLP,
    "keras_cnn": KerasCNN,
}


def build_model(name: str, input_dim: tuple, num_classes: int, **kwargs: Any) -> Any:
    """Instantiate a registered model for inputs of shape ``input_dim`` (C, H, W).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[key]
    if cls in (TwoLayerNet, MultiLayerNet):
        return cls(input_size=input_dim, output_size=num_classes, **kwargs)
    return cls(input_dim=tuple(input_dim), output_size=num_classes, **kwargs)


__all__ = ["TwoLayerNet", "MultiLayerNet", "SimpleConvNet", "DeepConvNet", "KerasMLP", "KerasCNN",
           "MODELS", "build_model"]
