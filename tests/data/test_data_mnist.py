"""MNIST / Fashion-MNIST datasets: small fixture files, then the real data.

The real-data tests read $EMBER_DATA (the folder holding mnist/ and fashion-mnist/) and are
skipped when it is unset or lacks the files.
"""

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from ember.data import MNIST, DatasetError, FashionMNIST, sources, write_idx

REAL_DATA = os.environ.get("EMBER_DATA")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache (via $HOME), no $EMBER_DATA, no Debian directory, no mirrors."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setattr(sources, "DEBIAN_ROOT", tmp_path / "debian")
    return tmp_path


def _write_split(directory, images, labels, prefix="t10k"):
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)


def _sample(n=20):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    return images, (np.arange(n) % 10).astype(np.uint8)


@pytest.mark.parametrize(
    "cls, name", [(MNIST, "mnist"), (FashionMNIST, "fashion-mnist")]
)
def test_fixture_split(isolated, cls, name):
    images, labels = _sample()
    _write_split(isolated / "r" / name, images, labels)
    ds = cls(root=isolated / "r", train=False, download=False)
    assert ds.images.shape == (20, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.labels.shape == (20,) and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(ds.images[:, 0], images / 255.0, rtol=1e-6)
    assert (
        ds.images[0].max() == 0.0 and ds.images[1].min() == 1.0
    )  # exact ends of [0, 1]
    assert len(ds) == 20 and len(ds.classes) == 10
    image, label = ds[3]
    assert image.shape == (1, 28, 28) and isinstance(label, int) and label == 3
    assert ds.arrays()[0] is ds.images


def test_flatten(isolated):
    images, labels = _sample()
    _write_split(isolated / "r", images, labels)
    ds = MNIST(root=isolated / "r", train=False, download=False, flatten=True)
    assert ds.images.shape == (20, 784)
    assert ds[0][0].shape == (784,)


def test_fashion_class_names():
    assert (
        FashionMNIST.classes[0] == "T-shirt/top"
        and FashionMNIST.classes[9] == "Ankle boot"
    )
    assert MNIST.classes == tuple("0123456789")


@pytest.mark.parametrize(
    "images, labels, pattern",
    [
        (
            np.zeros((5, 28, 28), np.uint8),
            np.zeros(4, np.uint8),
            r"expected as many labels as images, got 5 images in .* and 4 labels in ",
        ),
        (
            np.zeros((4, 28, 28), np.uint8),
            np.array([0, 1, 10, 2], np.uint8),
            r"expected labels in 0..9, got 10 at index 2",
        ),
        (
            np.zeros((4, 27, 28), np.uint8),
            np.zeros(4, np.uint8),
            r"expected uint8 images of shape \(N, 28, 28\), got uint8 \(4, 27, 28\)",
        ),
        (
            np.zeros((4, 28, 28), np.float32),
            np.zeros(4, np.uint8),
            r"expected uint8 images .* got float32",
        ),
        (
            np.zeros((4, 28, 28), np.uint8),
            np.zeros((4, 1), np.uint8),
            r"expected uint8 labels of shape \(N,\), got uint8 \(4, 1\)",
        ),
    ],
    ids=["count-mismatch", "label-range", "image-shape", "image-dtype", "label-shape"],
)
def test_inconsistent_files(isolated, images, labels, pattern):
    _write_split(isolated / "r", images, labels)
    with pytest.raises(DatasetError, match=r"MNIST\(train=False\): .*" + pattern):
        MNIST(root=isolated / "r", train=False, download=False)


def test_corrupt_file_names_path(isolated):
    images, labels = _sample()
    _write_split(isolated / "r", images, labels)
    path = isolated / "r" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="read_idx: .*t10k-images-idx3-ubyte.gz"):
        MNIST(root=isolated / "r", train=False, download=False)


# --- real data -----------------------------------------------------------------


def _real_dir(name):
    if not REAL_DATA:
        pytest.skip("EMBER_DATA is not set (set it to the folder holding mnist/ and fashion-mnist/)")
    directory = Path(REAL_DATA) / name
    if not directory.is_dir():
        pytest.skip(f"no {name} directory under EMBER_DATA={REAL_DATA}")
    return directory


@pytest.fixture(scope="module")
def fashion_train():
    _real_dir("fashion-mnist")
    return FashionMNIST(root=REAL_DATA, train=True, download=False)


def test_real_fashion_train(fashion_train):
    ds = fashion_train
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [6000] * 10)
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert (
        0.25 < float(ds.images.mean()) < 0.32
    )  # Fashion-MNIST's mean pixel is about 0.286


def test_real_fashion_test():
    _real_dir("fashion-mnist")
    ds = FashionMNIST(root=REAL_DATA, train=False, download=False, flatten=True)
    assert ds.images.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [1000] * 10)
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0


def test_real_mnist_test():
    _real_dir("mnist")
    ds = MNIST(root=REAL_DATA, train=False, download=False)
    assert ds.images.shape == (10000, 1, 28, 28)
    assert set(np.unique(ds.labels)) == set(range(10))
    assert 0.10 < float(ds.images.mean()) < 0.16  # MNIST's mean pixel is about 0.13


def test_real_mnist_train_offline_fails_listing_paths(isolated, monkeypatch):
    """The shared MNIST folder lacks train images: offline, that must fail clearly."""
    real = _real_dir("mnist")
    if (real / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("this EMBER_DATA has MNIST train images")
    monkeypatch.setenv("EMBER_DATA", REAL_DATA)
    with (
        socket.socket() as sock
    ):  # a local port nobody listens on: "offline" without internet
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    spec = sources.DATASETS["mnist"]
    monkeypatch.setitem(
        sources.DATASETS, "mnist", sources.DatasetSpec(spec.name, (url,), spec.files)
    )
    for download in (False, True):
        with pytest.raises(DatasetError) as info:
            MNIST(train=True, download=download)
        message = str(info.value)
        assert message.startswith(
            "MNIST(train=True): expected train-images-idx3-ubyte.gz;"
        )
        for directory, _ in sources.search_dirs("mnist"):
            assert str(directory) in message
        assert str(real) in message
        if download:  # the download was tried, and failed on the unreachable mirror
            assert "cannot reach" in message
