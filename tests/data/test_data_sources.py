"""Locating dataset files and downloading them from a local HTTP server.

No test here touches the real internet: mirror lists are replaced by servers on
127.0.0.1, and $HOME, $EMBER_DATA and the Debian directory point into tmp_path.
"""

import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from ember.data import MNIST, DatasetError, read_idx, sources, write_idx

N = 12
TRAIN_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache (via $HOME), no $EMBER_DATA, no Debian directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setattr(sources, "DEBIAN_ROOT", tmp_path / "debian")
    return tmp_path


def _make_split(directory, prefix="train", n=N, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Server:
    """Serves ``files`` (name -> bytes); bodies of names in ``truncate`` are cut."""

    def __init__(self, files, truncate=()):
        self.files, self.truncate, self.requests = files, set(truncate), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(
                    body[: len(body) // 2] if name in outer.truncate else body
                )

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.02,), daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def _content_sha256(body):
    return hashlib.sha256(gzip.decompress(body)).hexdigest()


def _patch_mnist(monkeypatch, mirrors, checksums, files, sha_override=None):
    """MNIST's table replaced by the fixture files (md5 for identity, content sha256 for downloads)."""
    shas = {name: _content_sha256(body) for name, body in files.items()}
    shas.update(sha_override or {})
    spec = dataclasses.replace(
        sources.DATASETS["mnist"],
        mirrors=tuple(mirrors),
        files=tuple(sources.RemoteFile(name, md5, sha256=shas.get(name)) for name, md5 in checksums.items()),
    )
    monkeypatch.setitem(sources.DATASETS, "mnist", spec)


@pytest.fixture
def served(tmp_path):
    """Fixture MNIST train files (bytes, md5s, arrays) to put on a server."""
    images, labels = _make_split(tmp_path / "origin")
    files = {name: (tmp_path / "origin" / name).read_bytes() for name in TRAIN_FILES}
    md5s = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    return files, md5s, images, labels


def test_checksum_table_matches_the_files_under_ember_data():
    """The table's MD5s (published or also_known) cover the dataset files in $EMBER_DATA."""
    if not os.environ.get("EMBER_DATA") or not Path(os.environ["EMBER_DATA"]).is_dir():
        pytest.skip("EMBER_DATA is not set to a data folder (point it at the folder holding mnist/ and fashion-mnist/)")
    root = Path(os.environ["EMBER_DATA"])
    checked = 0
    for name, spec in sources.DATASETS.items():
        for remote in spec.files:
            path = root / name / remote.filename
            if path.is_file():
                assert _md5(path) in remote.checksums, path
                checked += 1
    assert checked > 0


def test_search_order(isolated, monkeypatch):
    monkeypatch.setenv("EMBER_DATA", str(isolated / "env"))
    dirs = [
        (str(p), origin) for p, origin in sources.search_dirs("mnist", isolated / "r")
    ]
    home = isolated / "home" / ".cache" / "ember"
    assert dirs == [
        (str(isolated / "r" / "mnist"), "root"),
        (str(isolated / "r"), "root"),
        (str(isolated / "env" / "mnist"), "$EMBER_DATA"),
        (str(isolated / "env"), "$EMBER_DATA"),
        (str(home / "mnist"), "cache"),
        (str(home), "cache"),
        (str(isolated / "debian" / "mnist"), "Debian package"),
    ]


@pytest.mark.parametrize(
    "layout", ["named", "flat", "env", "cache", "debian", "uncompressed"]
)
def test_finds_files_in_every_location(isolated, monkeypatch, layout):
    places = {
        "named": isolated / "r" / "mnist",
        "flat": isolated / "r",
        "env": isolated / "env" / "mnist",
        "cache": isolated / "home" / ".cache" / "ember" / "mnist",
        "debian": isolated / "debian" / "mnist",
        "uncompressed": isolated / "r",
    }
    monkeypatch.setenv("EMBER_DATA", str(isolated / "env"))
    images, labels = _make_split(places[layout])
    if layout == "uncompressed":
        for name in TRAIN_FILES:
            gz = places[layout] / name
            write_idx(places[layout] / name[:-3], read_idx(gz))
            gz.unlink()
    ds = MNIST(root=isolated / "r", download=False)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.images.shape == (N, 1, 28, 28)


def test_root_takes_precedence_over_env(isolated, monkeypatch):
    _make_split(isolated / "r", n=5)
    _make_split(isolated / "env", n=7)
    monkeypatch.setenv("EMBER_DATA", str(isolated / "env"))
    assert len(MNIST(root=isolated / "r", download=False)) == 5
    assert len(MNIST(download=False)) == 7


def test_missing_offline_lists_every_place(isolated, monkeypatch):
    monkeypatch.setenv("EMBER_DATA", str(isolated / "env"))
    _make_split(isolated / "env" / "mnist", prefix="t10k")
    with pytest.raises(DatasetError) as info:
        MNIST(root=isolated / "r", train=True, download=False)
    message = str(info.value)
    assert message.startswith(
        "MNIST(train=True): expected train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz"
    )
    for directory, _ in sources.search_dirs("mnist", isolated / "r"):
        assert str(directory) in message
    assert "download=False" in message


def test_file_of_other_dataset_is_skipped(isolated, monkeypatch):
    """A Fashion-MNIST file (known by checksum) must never load as MNIST."""
    _make_split(isolated / "r")
    fashion = sources.DATASETS["fashion-mnist"]
    impostor = sources.RemoteFile(TRAIN_FILES[0], _md5(isolated / "r" / TRAIN_FILES[0]))
    monkeypatch.setitem(
        sources.DATASETS,
        "fashion-mnist",
        dataclasses.replace(fashion, files=(impostor,)),
    )
    with pytest.raises(
        DatasetError, match="its checksum says it is fashion-mnist/train-images"
    ):
        MNIST(root=isolated / "r", download=False)


def test_download_with_mirror_fallback_then_cache(isolated, monkeypatch, served):
    files, md5s, images, labels = served
    with _Server(files) as server:
        _patch_mnist(monkeypatch, [_closed_port_url(), server.url], md5s, files)
        ds = MNIST(train=True, download=True, timeout=5)
        assert sorted(server.requests) == sorted(TRAIN_FILES)
        cache = isolated / "home" / ".cache" / "ember" / "mnist"
        assert sorted(p.name for p in cache.iterdir()) == sorted(
            TRAIN_FILES
        )  # no temp files
        again = MNIST(train=True, download=True)
        assert len(server.requests) == 2  # second load came from the cache
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(again.images[:, 0] * 255, images, atol=1e-4)


def test_download_only_missing_file(isolated, monkeypatch, served):
    files, md5s, _, _ = served
    env = isolated / "env" / "mnist"
    env.mkdir(parents=True)
    (env / TRAIN_FILES[1]).write_bytes(files[TRAIN_FILES[1]])
    monkeypatch.setenv("EMBER_DATA", str(isolated / "env"))
    with _Server(files) as server:
        _patch_mnist(monkeypatch, [server.url], md5s, files)
        ds = MNIST(train=True)
        assert server.requests == [TRAIN_FILES[0]]
    assert ds.paths[TRAIN_FILES[1]] == env / TRAIN_FILES[1]


def _assert_clean_failure(isolated, info, *patterns):
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    cache = isolated / "home" / ".cache" / "ember" / "mnist"
    left = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert TRAIN_FILES[0] not in left  # the bad file never lands
    assert not [name for name in left if name.startswith(".")]  # nor its temp file


def test_checksum_mismatch_deletes_download(isolated, monkeypatch, served):
    files, md5s, _, _ = served
    with _Server(files) as server:
        _patch_mnist(monkeypatch, [server.url], md5s, files, {TRAIN_FILES[0]: "0" * 64})
        with pytest.raises(DatasetError) as info:
            MNIST(train=True)
    _assert_clean_failure(
        isolated,
        info,
        "expected content sha256 " + "0" * 64,
        "got " + _content_sha256(files[TRAIN_FILES[0]]),
        server.url + TRAIN_FILES[0],
    )


def test_truncated_download_keeps_the_partial_file_for_resume(isolated, monkeypatch, served):
    """A server that always cuts the body (and ignores Range): error, no final file, the .part kept."""
    files, md5s, _, _ = served
    with _Server(files, truncate=[TRAIN_FILES[0]]) as server:
        _patch_mnist(monkeypatch, [server.url], md5s, files)
        with pytest.raises(DatasetError) as info:
            MNIST(train=True)
    message = str(info.value)
    assert TRAIN_FILES[0] in message and "download failed" in message and "IncompleteRead" in message
    cache = isolated / "home" / ".cache" / "ember" / "mnist"
    assert not (cache / TRAIN_FILES[0]).exists()
    assert (cache / f".{TRAIN_FILES[0]}.part").stat().st_size == len(files[TRAIN_FILES[0]]) // 2


def test_http_404(isolated, monkeypatch, served):
    files, md5s, _, _ = served
    with _Server({}) as server:
        _patch_mnist(monkeypatch, [server.url], md5s, files)
        with pytest.raises(DatasetError, match="HTTP Error 404"):
            MNIST(train=True)


def test_offline_fails_fast(isolated, monkeypatch, served):
    files, md5s, _, _ = served
    _patch_mnist(monkeypatch, [_closed_port_url()], md5s, files)
    with pytest.raises(DatasetError) as info:
        MNIST(train=True)
    _assert_clean_failure(
        isolated,
        info,
        "MNIST(train=True)",
        "Connection refused",
        str(isolated / "home" / ".cache" / "ember" / "mnist"),
    )


def test_stalled_server_times_out(isolated, monkeypatch, served):
    files, md5s, _, _ = served
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/mnist/"
        _patch_mnist(monkeypatch, [url], md5s, files)
        with pytest.raises(DatasetError, match="timed out"):  # the 0.3 s timeout fired: no hang, a clear error
            MNIST(train=True, timeout=0.3)
