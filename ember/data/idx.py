"""Read and write IDX files, the container format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the row-major payload in big-endian
byte order. Files may be gzip-compressed; compression is detected from the gzip
magic bytes, not from the file name.

The reader is strict on purpose: a wrong magic, an unknown dtype code, a short
payload, trailing bytes or a damaged gzip stream all raise
:class:`~ember.data.errors.DatasetError` naming the file, because a silently
half-read training set is far worse than a loud failure.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ember.atomic_files import atomic_write

from .errors import DatasetError

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian numpy dtype (single bytes have no byte order).
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_NAME_TO_CODE: dict[str, int] = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}
_CHUNK = 1 << 22  # 4 MiB reads keep peak memory at one copy of the payload.


def _describe_codes() -> str:
    return ", ".join(
        f"0x{code:02X} ({_CODE_TO_DTYPE[code].name})" for code in _CODE_TO_DTYPE
    )


def _read_exact(stream: BinaryIO, nbytes: int) -> bytes:
    """Reads up to ``nbytes``; returns fewer only at end of stream."""
    parts = []
    remaining = nbytes
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _parse_header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Reads and validates the magic number and the dimensions."""
    magic = _read_exact(stream, 4)
    if len(magic) < 4:
        raise DatasetError(
            f"read_idx: {path}: expected a 4-byte IDX magic number, "
            f"got {len(magic)} bytes "
            "(empty or truncated file)"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"read_idx: {path}: expected IDX magic starting with 0x00 0x00, got "
            f"{magic.hex(' ')} (not an IDX file)"
        )
    code, ndim = magic[2], magic[3]
    if code not in _CODE_TO_DTYPE:
        raise DatasetError(
            f"read_idx: {path}: expected a dtype code in {{{_describe_codes()}}}, "
            f"got 0x{code:02X}"
        )
    if ndim == 0:
        raise DatasetError(f"read_idx: {path}: expected at least 1 dimension, got 0")
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(
            f"read_idx: {path}: expected {4 * ndim} bytes of dimensions "
            f"for ndim={ndim}, "
            f"got {len(raw_dims)} (truncated header)"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    return _CODE_TO_DTYPE[code], dims


def _read_payload(
    stream: BinaryIO, path: Path, dtype: np.dtype, dims: tuple[int, ...]
) -> np.ndarray:
    """Reads exactly the payload the header promises into a fresh native-order array."""
    nbytes = math.prod(dims) * dtype.itemsize
    try:
        buf = np.empty(nbytes, dtype=np.uint8)
    except (MemoryError, ValueError) as exc:
        raise DatasetError(
            f"read_idx: {path}: header claims shape {dims} of {dtype.name} "
            f"({nbytes} bytes), "
            f"which cannot be allocated ({exc}); the header is probably corrupt"
        ) from None
    view = memoryview(buf)
    filled = 0
    while filled < nbytes:
        n = stream.readinto(view[filled : filled + _CHUNK])
        if not n:
            raise DatasetError(
                f"read_idx: {path}: expected {nbytes} payload bytes for shape {dims} "
                f"{dtype.name}, got {filled} (truncated file)"
            )
        filled += n
    # Reading past the payload also makes gzip verify its CRC and length trailer.
    extra = stream.read(1)
    if extra:
        rest = 1 + len(stream.read())
        raise DatasetError(
            f"read_idx: {path}: expected {nbytes} payload bytes for shape {dims} "
            f"{dtype.name}, got {rest} trailing bytes after them"
        )
    array = buf.view(dtype).reshape(dims)
    if dtype.byteorder == ">" and np.little_endian:
        # Swap in place so the result never costs a second copy of the payload.
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (plain or gzip) into a native-byte-order numpy array.

    Args:
        path: the file to read. Gzip is recognised by its magic bytes.

    Returns:
        A writable, C-contiguous array whose dtype and shape come from the header.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file is not IDX, its header is invalid, its payload is
            shorter or longer than the header says, or its gzip stream is
            damaged (bad CRC, missing end-of-stream). Nothing partial is returned.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            size = os.fstat(raw.fileno()).st_size
            dtype, dims = _parse_header(raw, path)
            expected = 4 + 4 * len(dims) + math.prod(dims) * dtype.itemsize
            if size < expected:
                # Fail before allocating: a corrupt header may claim terabytes.
                raise DatasetError(
                    f"read_idx: {path}: expected {expected} bytes for shape {dims} "
                    f"{dtype.name}, got a {size}-byte file (truncated file)"
                )
            return _read_payload(raw, path, dtype, dims)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                dtype, dims = _parse_header(stream, path)
                return _read_payload(stream, path, dtype, dims)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DatasetError(
                f"read_idx: {path}: expected a complete gzip stream, got a damaged one "
                f"({type(exc).__name__}: {exc})"
            ) from None


def write_idx(
    path: str | os.PathLike, array: np.ndarray, compresslevel: int = 6
) -> Path:
    """Writes ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The write is atomic (``ember.atomic_files``), so readers never see a
    half-written file.
    Gzip output has a zero timestamp, so equal arrays give byte-identical files.

    Args:
        path: destination file.
        array: data of dtype uint8, int8, int16, int32, float32 or float64, with
            1 to 255 dimensions each below 2**32.
        compresslevel: gzip level 0-9 (ignored for plain files).

    Returns:
        The destination path.

    Raises:
        TypeError: the dtype has no IDX code.
        ValueError: the shape cannot be stored in an IDX header.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _NAME_TO_CODE.get(array.dtype.name)
    if code is None:
        raise TypeError(
            f"write_idx: expected dtype in ({', '.join(_NAME_TO_CODE)}), "
            f"got {array.dtype.name}"
        )
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(
            f"write_idx: expected 1-255 dimensions each < 2**32, "
            f"got shape {array.shape}"
        )
    header = (
        bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    )
    payload = np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()

    with atomic_write(path) as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=raw,
                compresslevel=compresslevel,
                mtime=0,
            ) as stream:
                stream.write(header)
                stream.write(payload)
        else:
            raw.write(header)
            raw.write(payload)
    return path
