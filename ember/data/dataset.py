"""In-memory datasets: :class:`TensorDataset` holds equally long columns as numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(value: Any) -> np.ndarray:
    """Returns a numpy array for an ndarray, a Tensor (``.numpy()``) or a list."""
    if isinstance(value, np.ndarray):
        return value
    to_numpy = getattr(value, "numpy", None)
    if callable(to_numpy):
        return np.asarray(to_numpy())
    return np.asarray(value)


class TensorDataset:
    """Samples are rows of equally long arrays: item ``i`` is ``(a[i], b[i], ...)``.

    Args:
        *arrays: numpy arrays, ember Tensors (copied to host with ``.numpy()``)
            or nested lists, all with the same first dimension.

    Raises:
        ValueError: no arrays, a 0-d array, or first dimensions that differ.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        converted = tuple(as_numpy(a) for a in arrays)
        shapes = [a.shape for a in converted]
        if any(a.ndim == 0 for a in converted) or len({s[0] for s in shapes}) != 1:
            raise ValueError(
                "TensorDataset: expected arrays with equal first dimension, got shapes "
                + ", ".join(str(s) for s in shapes)
            )
        self._arrays = converted

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The full arrays, in the order given."""
        return self._arrays

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self._arrays)

    def __repr__(self) -> str:
        return f"TensorDataset({', '.join(str(a.shape) for a in self._arrays)})"


class ImageClassification:
    """Base of the image datasets: ``images`` (float32) and ``labels`` (int64) held as whole arrays.

    Subclasses fill ``self.images``, ``self.labels``, ``self.train`` and
    ``self.flatten`` in ``__init__``; this base gives them the dataset protocol.
    """

    images: np.ndarray
    labels: np.ndarray
    train: bool
    flatten: bool

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The full ``(images, labels)`` arrays; DataLoader batches them directly."""
        return self.images, self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """One sample ``(image, label)``: a float32 image and an int label."""
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split}, n={len(self)}, images={self.images.shape}, flatten={self.flatten})"
