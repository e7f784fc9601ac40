"""Layers, one file per family (linear, conv, pooling, normalisation, activations, losses)."""
