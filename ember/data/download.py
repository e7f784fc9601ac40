"""Download one dataset file: resumable (HTTP Range), SHA-256-verified, atomic, with a progress bar.

The bytes go to ``.<name>.part`` beside the destination. A dropped connection
keeps that partial file and the next attempt (in the same call, or a later one)
asks the server only for the rest. The finished file is verified against the
SHA-256 of its *decompressed* IDX content, so the mirror's ``.gz`` and a
re-gzipped copy (Debian's) verify alike, and only then renamed into place; a file
that fails verification is deleted. A file with no recorded SHA-256 is refused
rather than downloaded unverified.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from .errors import DatasetError

MIRROR_ENV = "EMBER_DATA_MIRROR"
"""Environment variable: a base URL replacing every public mirror, serving ``<base>/<dataset>/<file>``."""

ATTEMPTS = 3
_BLOCK = 1 << 16


def content_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's content, decompressed first when it is gzip."""
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _chmod_like_open(path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _receive(url: str, part: Path, timeout: float, show_progress: bool | None) -> None:
    """One HTTP request appending to ``part`` from its current size; raises on any transfer failure."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the partial file is already complete
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        from tqdm import tqdm

        with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[1:-5], leave=False,
                disable=None if show_progress is None else not show_progress) as bar:
            received = offset
            while block := response.read(_BLOCK):
                out.write(block)
                received += len(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)


def fetch(url: str, dest: Path, sha256: str | None, timeout: float = 30.0, attempts: int = ATTEMPTS,
          show_progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest``: resume a partial file, verify, rename into place.

    Args:
        url: the file's address.
        dest: where the verified file lands (its folder must exist).
        sha256: expected SHA-256 of the (decompressed) content; None refuses to download.
        timeout: seconds any connect or read may stall.
        attempts: requests made before giving up on a connection that keeps dropping.
        show_progress: a tqdm bar: None shows it only on a terminal.

    Raises:
        DatasetError: no checksum to verify against, offline/refused, HTTP error, the connection
            dropped ``attempts`` times (the partial file is kept for the next call), or a
            checksum mismatch (the file is deleted).
    """
    if sha256 is None:
        raise DatasetError(f"{dest.name}: no SHA-256 is recorded for this file, so a download could not be "
                           "verified; refusing to download it (copy a file you trust into --data-dir or EMBER_DATA)")
    part = dest.with_name(f".{dest.name}.part")
    last: BaseException | None = None
    for _ in range(max(1, attempts)):
        try:
            _receive(url, part, timeout, show_progress)
            break
        except urllib.error.HTTPError as e:
            raise DatasetError(f"{url}: {e}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                raise DatasetError(f"cannot reach {url} ({reason}); offline? without network use --data-dir "
                                   "or EMBER_DATA with files you already have") from None
            last = reason if isinstance(reason, BaseException) else e
        except (http.client.HTTPException, OSError) as e:  # dropped connection, reset, timeout
            last = e
    else:
        have = part.stat().st_size if part.exists() else 0
        raise DatasetError(f"{url}: the connection kept failing ({type(last).__name__}: {last}); "
                           f"{have} bytes kept in {part}, the next try resumes from there") from None
    try:
        got = content_sha256(part)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        got = f"unreadable ({type(e).__name__}: {e})"
    if got != sha256:
        part.unlink(missing_ok=True)
        raise DatasetError(f"{url}: checksum mismatch, expected content sha256 {sha256}, got {got}; "
                           "the download was deleted")
    _chmod_like_open(part)
    os.replace(part, dest)
    return dest


def mirror_urls(name: str, filename: str, mirrors: tuple[str, ...]) -> list[str]:
    """The URLs to try for ``filename`` of dataset ``name``: ``$EMBER_DATA_MIRROR`` replaces the public ones."""
    override = os.environ.get(MIRROR_ENV)
    bases = [f"{override.rstrip('/')}/{name}/"] if override else list(mirrors)
    return [(b if b.endswith("/") else b + "/") + filename for b in bases]
