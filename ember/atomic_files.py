"""Atomic file writes: a temp file beside the target, fsynced, then ``os.replace``d over it.

A crash or an exception leaves either the old file or the complete new one,
never a half-written file; the temp file is removed on failure.  Checkpoints
(``ember.save``) and IDX files (``ember.data.write_idx``) are written this way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


@contextmanager
def atomic_write(path: Any, mode: str = "wb", suffix: str = ".tmp") -> Iterator[IO]:
    """Yield a file opened with ``mode`` that replaces ``path`` when the block ends without error.

    The file gets the permissions ``open()`` would give (0666 less the umask);
    after the rename the directory is fsynced too, so the rename is durable.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
    try:
        _chmod_like_open(fd)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(directory)


def _chmod_like_open(fd: int) -> None:
    """Give the temp file the mode ``open()`` would (0666 less the umask), not mkstemp's private 0600."""
    if not hasattr(os, "fchmod"):
        return
    umask = None
    try:  # Linux: read it without touching it (os.umask would change it for every thread a moment)
        with open("/proc/self/status") as f:
            umask = next((int(line.split()[1], 8) for line in f if line.startswith("Umask:")), None)
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def fsync_directory(directory: str) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
