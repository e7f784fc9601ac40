"""Choose and load the training data for the CLI, falling back to what exists offline.

Automatic choice order: MNIST, then Fashion-MNIST, then scikit-learn's bundled
digits (always available).  The reason for the choice is reported in one line
so a user knows why a run used, say, Fashion-MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from ember.data import MNIST, DatasetError, Digits, FashionMNIST, TensorDataset
from ember.data.sources import locate, search_dirs

DATASETS = ("mnist", "fashion-mnist", "digits")


@dataclass
class LoadedData:
    """Train/test arrays plus the name of the dataset and why it was chosen."""

    name: str
    reason: str
    train: TensorDataset
    test: TensorDataset
    input_dim: tuple
    num_classes: int


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _load(name: str, data_dir: str | None, download: bool) -> tuple:
    if name == "digits":
        return Digits(train=True).arrays(), Digits(train=False).arrays()
    cls = MNIST if name == "mnist" else FashionMNIST
    train = cls(root=data_dir, train=True, download=download)
    test = cls(root=data_dir, train=False, download=download)
    return train.arrays(), test.arrays()


def choose_dataset(name: str = "auto", data_dir: str | None = None, download: bool = False) -> tuple[str, str]:
    """Which dataset a run uses and why, found by locating files only (no arrays are read).

    ``auto`` takes MNIST, then Fashion-MNIST, then the bundled digits; but when ``data_dir`` is
    given, finding neither 28x28 set there is an error rather than a silent fallback.

    Raises:
        ValueError: unknown dataset name.
        DatasetError: the named dataset (or, with ``data_dir``, any 28x28 set) cannot be found.
    """
    name = name.lower().replace("_", "-")
    if name != "auto" and name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: auto, {', '.join(DATASETS)}")
    if name == "digits":
        return name, "requested with --dataset"
    if name != "auto":
        locate(name, list(_IDX_FILES), root=data_dir, download_missing=download, op=name)
        return name, "requested with --dataset"
    for candidate in ("mnist", "fashion-mnist"):
        try:
            locate(candidate, list(_IDX_FILES), root=data_dir, download_missing=False, op=candidate)
        except DatasetError:
            continue
        return candidate, f"auto: {candidate} found" + ("" if candidate == "mnist" else ", mnist not found")
    searched = ", ".join(str(d.parent) for d, _ in search_dirs("mnist", data_dir) if d.name == "mnist")
    if data_dir is not None:
        raise DatasetError(f"--data-dir {data_dir}: found neither mnist nor fashion-mnist IDX files "
                           f"(searched {searched}; expected <dir>/mnist/train-images-idx3-ubyte.gz and the "
                           "other three files)")
    return "digits", f"auto: no MNIST or Fashion-MNIST found in {searched}, so scikit-learn's bundled 8x8 digits"


def load_data(name: str = "auto", data_dir: str | None = None, max_train: int | None = None,
              max_test: int | None = None, seed: int = 0, download: bool = False) -> LoadedData:
    """Load ``name`` (or the first available with ``auto``) as float32 NCHW arrays.

    Args:
        name: 'auto', 'mnist', 'fashion-mnist' or 'digits'.
        data_dir: an explicit root searched first (else $EMBER_DATA, the cache, ...).
        max_train, max_test: subsample sizes (a seeded random subset), None for all.
        seed: seed of the subsampling.
        download: allow downloading missing files (auto mode never downloads).

    Raises:
        ValueError: unknown dataset name.
        DatasetError: the named dataset cannot be found.
    """
    name, reason = choose_dataset(name, data_dir, download)
    tr, te = _load(name, data_dir, download)
    rng = numpy.random.default_rng(seed)
    tr = _subsample(tr, max_train, rng)
    te = _subsample(te, max_test, rng)
    x_tr, y_tr = tr
    num_classes = int(max(y_tr.max(), te[1].max())) + 1
    return LoadedData(name, reason, TensorDataset(*tr), TensorDataset(*te), tuple(x_tr.shape[1:]), num_classes)


def _subsample(arrays: tuple, n: int | None, rng: numpy.random.Generator) -> tuple:
    x, y = arrays
    x = x.reshape(len(x), *((1,) + x.shape[1:] if x.ndim == 3 else x.shape[1:])) if x.ndim != 4 else x
    if n is None or n >= len(x):
        return x.astype(numpy.float32, copy=False), y.astype(numpy.int64, copy=False)
    if n <= 0:
        raise ValueError(f"--max-train/--max-test: expected a positive count, got {n}")
    idx = numpy.sort(rng.choice(len(x), size=n, replace=False))
    return x[idx].astype(numpy.float32, copy=False), y[idx].astype(numpy.int64, copy=False)
