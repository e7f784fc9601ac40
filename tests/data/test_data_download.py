"""``--download`` for real: a loopback HTTP server serving the data folder that $EMBER_DATA points at.

Covers a good download (checked against the recorded SHA-256), a corrupted copy (checksum error, file
not kept), a server that drops the connection mid-file (the retry resumes with HTTP Range), offline
(connection refused) and the CLI's ``--download``.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from ember.data import DatasetError, sources
from ember.data.download import MIRROR_ENV, content_sha256, fetch

FILE = "t10k-labels-idx1-ubyte.gz"  # small: keeps the test fast


@pytest.fixture(scope="module")
def data_root() -> Path:
    root = os.environ.get("EMBER_DATA")
    if not root or not (Path(root) / "fashion-mnist" / FILE).is_file():
        pytest.skip("set EMBER_DATA to a folder holding fashion-mnist/ to test downloads against real files")
    return Path(root)


class LoopbackMirror:
    """Serves ``root`` over HTTP with Range support; can corrupt files or drop the first response midway."""

    def __init__(self, root: Path, corrupt: bool = False, drop_first: bool = False):
        self.root, self.corrupt, self.drop_first, self.requests = root, corrupt, drop_first, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = mirror.root / self.path.lstrip("/")
                mirror.requests.append((self.path, self.headers.get("Range")))
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                if mirror.corrupt:
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if mirror.drop_first and len(mirror.requests) == 1:
                    self.wfile.write(body[start:start + len(body) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # drop the connection mid-file
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sources, "DEBIAN_ROOT", tmp_path / "debian")
    return tmp_path / ".cache" / "ember"


def _expected_sha(name: str, filename: str) -> str:
    sha = sources.DATASETS[name].file(filename).sha256
    assert sha is not None
    return sha


def test_recorded_checksums_match_the_data_folder(data_root):
    checked = 0
    for name, spec in sources.DATASETS.items():
        for remote in spec.files:
            path = data_root / name / remote.filename
            if path.is_file():
                assert remote.sha256 is not None, path
                assert content_sha256(path) == remote.sha256, path
                checked += 1
    assert checked >= 4


def test_good_download_lands_verified_in_the_cache(data_root, empty_home, monkeypatch):
    with LoopbackMirror(data_root) as mirror:
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        path = sources.download("fashion-mnist", FILE, timeout=5)
    assert path == empty_home / "fashion-mnist" / FILE
    assert path.read_bytes() == (data_root / "fashion-mnist" / FILE).read_bytes()
    assert path.stat().st_mode & 0o077 == 0o044 & ~_umask()
    assert sorted(p.name for p in path.parent.iterdir()) == [FILE]
    assert mirror.requests == [(f"/fashion-mnist/{FILE}", None)]


def test_corrupted_copy_is_a_checksum_error_and_not_kept(data_root, empty_home, monkeypatch):
    with LoopbackMirror(data_root, corrupt=True) as mirror:
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        with pytest.raises(DatasetError, match="checksum mismatch, expected content sha256 "
                                               + _expected_sha("fashion-mnist", FILE)):
            sources.download("fashion-mnist", FILE, timeout=5)
    assert list((empty_home / "fashion-mnist").iterdir()) == []


def test_dropped_connection_resumes_with_range(data_root, empty_home, monkeypatch):
    with LoopbackMirror(data_root, drop_first=True) as mirror:
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        path = sources.download("fashion-mnist", FILE, timeout=5)
    size = (data_root / "fashion-mnist" / FILE).stat().st_size
    assert path.read_bytes() == (data_root / "fashion-mnist" / FILE).read_bytes()
    assert mirror.requests == [(f"/fashion-mnist/{FILE}", None), (f"/fashion-mnist/{FILE}", f"bytes={size // 3}-")]


def test_a_later_call_resumes_a_partial_file(data_root, empty_home, monkeypatch):
    with LoopbackMirror(data_root, drop_first=True) as mirror:
        dest = empty_home / "fashion-mnist" / FILE
        dest.parent.mkdir(parents=True)
        url = f"{mirror.url}/fashion-mnist/{FILE}"
        with pytest.raises(DatasetError, match="next try resumes"):
            fetch(url, dest, _expected_sha("fashion-mnist", FILE), timeout=5, attempts=1)
        assert not dest.exists() and dest.with_name(f".{FILE}.part").is_file()
        fetch(url, dest, _expected_sha("fashion-mnist", FILE), timeout=5)
    assert dest.read_bytes() == (data_root / "fashion-mnist" / FILE).read_bytes()
    assert mirror.requests[-1][1] is not None  # the second call asked for the rest only


def test_offline_is_one_clear_error(empty_home, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(DatasetError, match=r"cannot reach .*Connection refused.*offline\?"):
        sources.download("fashion-mnist", FILE, timeout=5)


def test_a_file_without_recorded_sha256_is_refused(empty_home, monkeypatch):
    """A table entry without a SHA-256 is never downloaded unverified (before any connection)."""
    import dataclasses

    spec = sources.DATASETS["mnist"]
    files = tuple(dataclasses.replace(f, sha256=None) if f.filename == "train-images-idx3-ubyte.gz" else f
                  for f in spec.files)
    monkeypatch.setitem(sources.DATASETS, "mnist", dataclasses.replace(spec, files=files))
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # never contacted
    with pytest.raises(DatasetError, match="no SHA-256 is recorded"):
        sources.download("mnist", "train-images-idx3-ubyte.gz", timeout=5)


def test_cli_download_then_train(data_root, empty_home, monkeypatch, tmp_path, capsys):
    from ember.train import main

    monkeypatch.delenv("EMBER_DATA", raising=False)
    with LoopbackMirror(data_root) as mirror:
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        code = main(["--dataset", "fashion-mnist", "--download", "--model", "two_layer_net", "--epochs", "1",
                     "--max-train", "500", "--max-test", "200", "--no-plot", "--progress", "off",
                     "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (empty_home / "fashion-mnist").iterdir()) == sorted(
        r.filename for r in sources.DATASETS["fashion-mnist"].files)
    assert json.loads((tmp_path / "run" / "history.json").read_text())["dataset"] == "fashion-mnist"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
