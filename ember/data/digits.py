"""scikit-learn's bundled 8x8 handwritten digits: a tiny offline dataset.

The 1797 images ship inside scikit-learn, so this dataset needs neither network
nor ``$EMBER_DATA``; it is what quick examples and tests train on. scikit-learn
provides no train/test split, so one is made here: a seeded, stratified split
whose two halves are disjoint and together cover every sample.
"""

from __future__ import annotations

import numpy as np

from .dataset import ImageClassification
from .errors import DatasetError

N_CLASSES = 10


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Returns sklearn's digits: images (1797, 8, 8) float64 in 0..16, and labels."""
    try:
        from sklearn.datasets import load_digits  # Lazy: sklearn takes ~1 s to import.
    except ImportError as exc:
        raise DatasetError(
            f"Digits: expected scikit-learn to be installed, got ImportError ({exc}); "
            "fix: pip install scikit-learn"
        ) from None
    bunch = load_digits()
    return np.asarray(bunch.images), np.asarray(bunch.target)


def split_indices(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: class c gives ``round(n_c * test_fraction)`` test samples.

    Args:
        labels: (N,) integer class labels.
        test_fraction: share of each class placed in the test split.
        seed: seed of the numpy Generator that picks the test samples.

    Returns:
        ``(train_idx, test_idx)``, each sorted ascending; disjoint, covering 0..N-1.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = int(round(len(members) * test_fraction))
        test_parts.append(rng.permutation(members)[:n_test])
    test_idx = (
        np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, np.int64)
    )
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    return np.flatnonzero(~is_test), test_idx


class Digits(ImageClassification):
    """8x8 digits as float32 images in [0, 1] and int64 labels, split train/test.

    Attributes:
        images: ``(N, 1, 8, 8)`` float32 (``(N, 64)`` with ``flatten=True``),
            sklearn's 0..16 intensities divided by 16.
        labels: ``(N,)`` int64 in 0..9.
        indices: positions of this split's samples in sklearn's 1797.
        classes: the class names ``"0"`` .. ``"9"``.
    """

    classes = tuple(str(digit) for digit in range(N_CLASSES))

    def __init__(
        self,
        train: bool = True,
        test_fraction: float = 0.2,
        seed: int = 0,
        flatten: bool = False,
    ) -> None:
        """Loads the digits and keeps one split.

        Args:
            train: keep the training split if True, else the test split.
            test_fraction: share of each class in the test split, in (0, 1).
            seed: split seed; the same seed always gives the same split.
            flatten: images of shape ``(N, 64)`` instead of ``(N, 1, 8, 8)``.

        Raises:
            ValueError: ``test_fraction`` is outside (0, 1) or ``seed`` is not an int.
            DatasetError: scikit-learn is not installed.
        """
        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, (int, float))
            or not 0.0 < float(test_fraction) < 1.0
        ):
            raise ValueError(
                f"Digits: expected 0 < test_fraction < 1, got {test_fraction!r}"
            )
        if (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or seed < 0
        ):
            raise ValueError(f"Digits: expected a non-negative int seed, got {seed!r}")
        self.train = bool(train)
        self.flatten = bool(flatten)
        raw_images, raw_labels = _load_sklearn_digits()
        train_idx, test_idx = split_indices(raw_labels, float(test_fraction), int(seed))
        self.indices: np.ndarray = train_idx if self.train else test_idx

        images = (raw_images[self.indices] / 16.0).astype(np.float32)
        shape = (-1, 64) if self.flatten else (-1, 1, 8, 8)
        self.images: np.ndarray = images.reshape(shape)
        self.labels: np.ndarray = raw_labels[self.indices].astype(np.int64)
