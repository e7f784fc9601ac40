"""Find dataset files on disk, or download them with checksum verification.

Search order: an explicit ``root``, ``$EMBER_DATA``, the
cache ``~/.cache/ember``, Debian's ``/usr/share/datasets/<name>`` (package
``dataset-fashion-mnist``), then a download into ``~/.cache/ember/<name>`` when
``download=True``. Each of the first three bases is tried as ``<base>/<name>/``
and then as ``<base>/`` itself, and each file as ``<file>.gz`` and then
uncompressed.

MNIST and Fashion-MNIST use the same file names, so a directory holding one
could be mistaken for the other. Every local candidate is therefore hashed and
rejected if its MD5 is known to belong to a *different* file of the table
below; files with unknown checksums (re-packed or user-made copies) are accepted
and left to the strict IDX reader.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

DEFAULT_TIMEOUT = 30.0
"""Seconds a download may stall (connect or read) before it is abandoned."""

DEBIAN_ROOT = Path("/usr/share/datasets")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and the checksums that identify it.

    Attributes:
        filename: name on the mirrors and on disk.
        md5: checksum of the file as the mirrors publish it.
        also_known: other MD5s of byte-different but equivalent copies (for
            example Debian's re-gzipped files); accepted, never required.
    """

    filename: str
    md5: str
    also_known: tuple[str, ...] = ()

    @property
    def checksums(self) -> tuple[str, ...]:
        """Every accepted MD5, the published one first."""
        return (self.md5, *self.also_known)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset can be downloaded from and what its files must hash to."""

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]

    def file(self, filename: str) -> RemoteFile:
        """Returns the table entry of ``filename`` (KeyError if it has none)."""
        for remote in self.files:
            if remote.filename == filename:
                return remote
        raise KeyError(f"{self.name}: no file named {filename!r} in the checksum table")


# MNIST: the published MD5s (torchvision and the original site agree).
# Fashion-MNIST: the published MD5s from zalandoresearch/fashion-mnist. Re-gzipped
# copies (no stored name, as Debian's dataset-fashion-mnist ships them) hash
# differently; their MD5s are listed as also_known.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"
            ),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                ("cf8536b0aa1a6ac5fa3f23001093305c",),
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
                ("10bea18fdb374794d4bb42e356e600c9",),
            ),
            RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
                ("f78720b4224f21cce2f2ccf2d7a94c9a",),
            ),
            RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
                ("0d30e22e447f3c33dab9ed536400ac01",),
            ),
        ),
    ),
}


def cache_root() -> Path:
    """The download cache, ``~/.cache/ember`` (``$HOME`` is read on every call)."""
    return Path.home() / ".cache" / "ember"


def search_dirs(
    name: str, root: str | os.PathLike | None = None
) -> list[tuple[Path, str]]:
    """Lists the directories searched for dataset ``name``, in order.

    Args:
        name: dataset directory name, e.g. ``"mnist"`` or ``"fashion-mnist"``.
        root: an explicit directory given by the user, searched first.

    Returns:
        ``(directory, origin)`` pairs without duplicates; ``origin`` says why the
        directory is searched (for error messages). Missing directories are kept.
    """
    bases: list[tuple[Path, str]] = []
    if root is not None:
        bases.append((Path(root).expanduser(), "root"))
    env = os.environ.get("EMBER_DATA", "")
    if env:
        bases.append((Path(env).expanduser(), "$EMBER_DATA"))
    bases.append((cache_root(), "cache"))

    dirs: list[tuple[Path, str]] = []
    for base, origin in bases:
        dirs.append((base / name, origin))
        dirs.append((base, origin))
    dirs.append((DEBIAN_ROOT / name, "Debian package"))

    seen: set[Path] = set()
    unique = []
    for path, origin in dirs:
        if path not in seen:
            seen.add(path)
            unique.append((path, origin))
    return unique


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _foreign_identity(path: Path, name: str, filename: str) -> str | None:
    """Names the other known file ``path`` is, or None if it may be name/filename."""
    digest = md5sum(path)
    for spec in DATASETS.values():
        for remote in spec.files:
            if digest in remote.checksums:
                if (spec.name, remote.filename) == (name, filename):
                    return None
                return f"{spec.name}/{remote.filename}"
    return None


def _find_local(
    name: str, filename: str, dirs: list[tuple[Path, str]], notes: list[str]
) -> Path | None:
    names = [filename]
    if filename.endswith(".gz"):
        names.append(filename[: -len(".gz")])
    for directory, _ in dirs:
        for candidate_name in names:
            candidate = directory / candidate_name
            if not candidate.is_file():
                continue
            other = _foreign_identity(candidate, name, filename)
            if other is not None:
                notes.append(f"skipped {candidate}: its checksum says it is {other}")
                continue
            return candidate
    return None


def _fetch(url: str, dest: Path, checksums: tuple[str, ...], timeout: float) -> None:
    """Downloads ``url`` to ``dest`` atomically; a failure raises, leaving nothing."""
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
        )
    except OSError as exc:
        raise DatasetError(f"cannot write to {dest.parent}: {exc}") from None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                announced = response.headers.get("Content-Length")
                while block := response.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                    received += len(block)
            if (
                announced is not None
                and announced.isdigit()
                and received != int(announced)
            ):
                raise DatasetError(
                    f"expected {announced} bytes, got {received} (truncated download)"
                )
            if digest.hexdigest() not in checksums:
                raise DatasetError(
                    f"expected md5 {' or '.join(checksums)}, got {digest.hexdigest()} "
                    f"({received} bytes; corrupt or different file)"
                )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = (
            exc
            if isinstance(exc, urllib.error.HTTPError)
            else getattr(exc, "reason", exc)
        )
        raise DatasetError(f"{type(exc).__name__}: {reason}") from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def download(name: str, filename: str, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Downloads one file of dataset ``name`` into ``~/.cache/ember/<name>/``.

    Mirrors are tried in order. Each download goes to a temporary file in the
    destination directory and is renamed into place only after its MD5 matches
    the table, so a failed or interrupted download never leaves a usable-looking
    file behind.

    Args:
        name: key of :data:`DATASETS`.
        filename: a file listed in that dataset's table.
        timeout: seconds any single connect or read may stall.

    Returns:
        The path of the verified file.

    Raises:
        DatasetError: every mirror failed (offline, HTTP error, timeout,
            truncated body, checksum mismatch); the message lists each failure.
    """
    spec = DATASETS[name]
    remote = spec.file(filename)
    dest_dir = cache_root() / name
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(
            f"download {name}/{filename}: cannot create {dest_dir}: {exc}"
        ) from None
    dest = dest_dir / filename
    failures = []
    for mirror in spec.mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += filename
        try:
            _fetch(url, dest, remote.checksums, timeout)
            return dest
        except DatasetError as exc:
            failures.append(f"{url}: {exc}")
    raise DatasetError(
        f"download {name}/{filename}: expected a verified copy from a mirror, "
        "got failures:\n  " + "\n  ".join(failures)
    )


def locate(
    name: str,
    filenames: list[str],
    root: str | os.PathLike | None = None,
    download_missing: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    op: str | None = None,
) -> dict[str, Path]:
    """Finds every file in ``filenames`` for dataset ``name``, downloading if allowed.

    Args:
        name: key of :data:`DATASETS` (also the per-dataset directory name).
        filenames: files needed, e.g. the images and labels of one split.
        root: explicit directory searched before all others.
        download_missing: download files found nowhere on disk.
        timeout: download stall timeout in seconds.
        op: caller name used in the error message (default: ``name``).

    Returns:
        Mapping from each requested file name to an existing path.

    Raises:
        DatasetError: some file was found nowhere and could not be downloaded;
            the message names the missing files, every directory searched, any
            file skipped because of its checksum, and each download failure.
    """
    op = op or name
    dirs = search_dirs(name, root)
    notes: list[str] = []
    found: dict[str, Path] = {}
    for filename in filenames:
        path = _find_local(name, filename, dirs, notes)
        if path is not None:
            found[filename] = path

    failures: list[str] = []
    for filename in filenames:
        if filename in found or not download_missing:
            continue
        try:
            found[filename] = download(name, filename, timeout)
        except DatasetError as exc:
            failures.append(str(exc))

    missing = [f for f in filenames if f not in found]
    if not missing:
        return found
    lines = [f"{op}: expected {', '.join(missing)}; not found in any of:"]
    lines += [f"  {directory}  ({origin})" for directory, origin in dirs]
    lines += [f"  {note}" for note in notes]
    if download_missing:
        lines.append("and the download failed:")
        lines += ["  " + failure.replace("\n", "\n  ") for failure in failures]
    else:
        lines.append("download=False, so nothing was downloaded.")
    lines.append(
        "Fix: put the files in one of these directories, set $EMBER_DATA, "
        "or pass root=... or download=True with network access."
    )
    raise DatasetError("\n".join(lines))
