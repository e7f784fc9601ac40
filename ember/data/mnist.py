"""MNIST and Fashion-MNIST: 28x28 grayscale images in ten classes.

Each dataset object loads one split (train or test) completely into two numpy
arrays when it is constructed: ``images`` as float32 in [0, 1] with layout
NCHW ``(N, 1, 28, 28)`` (or ``(N, 784)`` with ``flatten=True``), and ``labels``
as int64 class indices. The whole split fits comfortably in memory (about
190 MB for 60000 images), and holding it as two arrays lets
:class:`~ember.data.DataLoader` cut batches by fancy indexing instead of a
Python loop over samples.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from .dataset import ImageClassification
from .errors import DatasetError
from .idx import read_idx
from .sources import DEFAULT_TIMEOUT, locate

_HEIGHT = _WIDTH = 28


class _IdxClassification(ImageClassification):
    """Loader shared by MNIST-format datasets; subclasses set the class variables."""

    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        download: bool = True,
        flatten: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Locates, reads and validates one split.

        Args:
            root: directory searched before ``$EMBER_DATA``, the cache and the
                Debian dataset directory (see :mod:`ember.data.sources`).
            train: the 60000-image training split if True, else the 10000-image
                test split.
            download: download files found nowhere locally (checksum-verified).
            flatten: images of shape ``(N, 784)`` instead of ``(N, 1, 28, 28)``.
            timeout: seconds a download may stall before it is abandoned.

        Raises:
            DatasetError: a file is missing everywhere and cannot be downloaded,
                is not valid IDX, or images and labels disagree.
        """
        self.train = bool(train)
        self.flatten = bool(flatten)
        prefix = "train" if self.train else "t10k"
        image_file = f"{prefix}-images-idx3-ubyte.gz"
        label_file = f"{prefix}-labels-idx1-ubyte.gz"
        op = f"{type(self).__name__}(train={self.train})"
        paths = locate(
            self.name,
            [image_file, label_file],
            root=root,
            download_missing=download,
            timeout=timeout,
            op=op,
        )
        self.paths = paths

        raw_images = read_idx(paths[image_file])
        raw_labels = read_idx(paths[label_file])
        self._check(op, paths[image_file], paths[label_file], raw_images, raw_labels)

        # One pass uint8 -> float32; true division keeps 255 -> exactly 1.0.
        images = np.divide(raw_images, np.float32(255.0), dtype=np.float32)
        shape = (-1, _HEIGHT * _WIDTH) if self.flatten else (-1, 1, _HEIGHT, _WIDTH)
        self.images: np.ndarray = images.reshape(shape)
        self.labels: np.ndarray = raw_labels.astype(np.int64)

    def _check(
        self,
        op: str,
        image_path: os.PathLike,
        label_path: os.PathLike,
        images: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        if (
            images.dtype != np.uint8
            or images.ndim != 3
            or images.shape[1:] != (_HEIGHT, _WIDTH)
        ):
            raise DatasetError(
                f"{op}: {image_path}: expected uint8 images of shape "
                f"(N, {_HEIGHT}, {_WIDTH}), "
                f"got {images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(
                f"{op}: {label_path}: expected uint8 labels of shape (N,), "
                f"got {labels.dtype} {labels.shape}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"{op}: expected as many labels as images, got {len(images)} images in "
                f"{image_path} and {len(labels)} labels in {label_path}"
            )
        if labels.size and labels.max() >= len(self.classes):
            bad = int(np.argmax(labels >= len(self.classes)))
            raise DatasetError(
                f"{op}: {label_path}: expected labels in 0..{len(self.classes) - 1}, "
                f"got {int(labels[bad])} at index {bad}"
            )


class MNIST(_IdxClassification):
    """LeCun et al.'s handwritten digits: 60000 train, 10000 test images, classes 0-9.

    Example:
        >>> ds = MNIST(train=False)            # doctest: +SKIP
        >>> ds.images.shape, ds.labels.dtype   # doctest: +SKIP
        ((10000, 1, 28, 28), dtype('int64'))
    """

    name = "mnist"
    classes = tuple(str(digit) for digit in range(10))


class FashionMNIST(_IdxClassification):
    """Zalando's Fashion-MNIST: MNIST's shape and size, ten kinds of clothing."""

    name = "fashion-mnist"
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
