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
import os
from dataclasses import dataclass
from pathlib import Path

from .download import fetch, mirror_urls
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
        sha256: SHA-256 of the decompressed content, which a download must match;
            None where no copy was at hand to compute it (a download is then refused).
    """

    filename: str
    md5: str
    also_known: tuple[str, ...] = ()
    sha256: str | None = None

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


# MNIST: the published MD5s (torchvision and the original site agree); the three
# MNIST files we had at hand match them byte for byte.
# Fashion-MNIST: the published MD5s from zalandoresearch/fashion-mnist. The copies
# of Fashion-MNIST we had at hand are re-gzipped (gzip mtime 2020-06-05, no stored
# name, as Debian's dataset-fashion-mnist ships them), so they hash differently;
# their MD5s are listed as also_known.
# sha256 (what a download is verified against) is of the decompressed IDX content, so any gzip
# packaging of the same images verifies. Computed from the local copies; MNIST's train-images, of
# which no copy was at hand, is the value public MNIST downloaders record beside the compressed
# file's SHA-256 (440fcabf...3609), and those same downloaders agree with our three local MNIST files.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
                sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                       sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                       sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
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
                sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
                ("10bea18fdb374794d4bb42e356e600c9",),
                sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
                ("f78720b4224f21cce2f2ccf2d7a94c9a",),
                sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
                ("0d30e22e447f3c33dab9ed536400ac01",),
                sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
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


def download(name: str, filename: str, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Downloads one file of dataset ``name`` into ``~/.cache/ember/<name>/``.

    Mirrors are tried in order (``$EMBER_DATA_MIRROR`` replaces them); see
    :func:`ember.data.download.fetch` for resume, verification and atomicity.

    Returns:
        The path of the verified file.

    Raises:
        DatasetError: every mirror failed (offline, HTTP error, dropped connection,
            checksum mismatch, no recorded checksum); the message lists each failure.
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
    failures = []
    for url in mirror_urls(name, filename, spec.mirrors):
        try:
            return fetch(url, dest_dir / filename, remote.sha256, timeout)
        except DatasetError as exc:
            failures.append(str(exc))
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
