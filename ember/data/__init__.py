"""Datasets and batching for ember.

MNIST and Fashion-MNIST are read from IDX files found on disk (an explicit
``root``, ``$EMBER_DATA``, ``~/.cache/ember``, Debian's ``/usr/share/datasets``)
or downloaded with checksum verification; Digits is scikit-learn's bundled 8x8
set. :class:`DataLoader` turns any of them, or a :class:`TensorDataset`, into
shuffled mini-batches of Tensors.

Nothing here imports the ember core at import time, so ``import ember.data``
works on its own; Tensors are created only when a DataLoader is iterated.
"""

from .digits import Digits
from .errors import DatasetError
from .idx import read_idx, write_idx
from .dataset import TensorDataset
from .distributed_sampler import DistributedSampler
from .loader import DataLoader
from .mnist import MNIST, FashionMNIST
from .subsets import Subset, random_split

__all__ = [
    "MNIST",
    "FashionMNIST",
    "Digits",
    "TensorDataset",
    "DataLoader",
    "DistributedSampler",
    "DatasetError",
    "read_idx",
    "write_idx",
    "Subset",
    "random_split",
]
