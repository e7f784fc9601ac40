"""IDX reader/writer: round trips, byte layout and strict header validation."""

import gzip
import os

import numpy as np
import pytest

from ember.data import DatasetError, read_idx, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


def _raw_idx(code: int, dims: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + payload


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable and back.flags.c_contiguous


def test_byte_layout_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "b.idx", np.array([[1, 256]], dtype=np.int16))
    assert path.read_bytes() == bytes(
        [0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 1, 0]
    )


def test_gzip_output_is_deterministic_and_atomic(tmp_path):
    array = np.arange(100, dtype=np.uint8).reshape(10, 10)
    first = write_idx(tmp_path / "c.gz", array).read_bytes()
    second = write_idx(tmp_path / "c.gz", array).read_bytes()  # overwrite in place
    assert first == second
    assert os.listdir(tmp_path) == ["c.gz"]  # no temp files left behind


def test_write_rejects_unsupported_dtype_and_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="write_idx: expected dtype.*got int64"):
        write_idx(tmp_path / "d.idx", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="write_idx: expected 1-255 dimensions"):
        write_idx(tmp_path / "d.idx", np.array(3, dtype=np.uint8))
    assert os.listdir(tmp_path) == []


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    gz = write_idx(tmp_path / "e.gz", array)
    renamed = tmp_path / "e.idx"
    gz.rename(renamed)
    np.testing.assert_array_equal(read_idx(renamed), array)


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", r"expected a 4-byte IDX magic number, got 0 bytes"),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(40),
            r"expected IDX magic starting with 0x00 0x00, got 89 50",
        ),
        (_raw_idx(0x0A, (2,), b"\x00\x00"), r"expected a dtype code in .*got 0x0A"),
        (bytes([0, 0, 8, 0]), r"expected at least 1 dimension, got 0"),
        (
            bytes([0, 0, 8, 3, 0, 0, 0, 2]),
            r"expected 12 bytes of dimensions.*got 4 \(truncated header\)",
        ),
        (
            _raw_idx(0x08, (2, 3), bytes(5)),
            r"expected 18 bytes for shape \(2, 3\) uint8, got a 17-byte",
        ),
        (
            _raw_idx(0x0C, (2,), bytes(8) + b"xyz"),
            r"expected 8 payload bytes .* got 3 trailing bytes",
        ),
    ],
    ids=[
        "empty",
        "not-idx",
        "bad-dtype-code",
        "zero-dims",
        "short-header",
        "short-payload",
        "trailing",
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_header_validation(tmp_path, content, pattern, compress):
    path = tmp_path / "bad.idx"
    if compress:
        content = gzip.compress(content)
        pattern = pattern.replace(
            r"got a 17-byte", r"got 5 \(truncated file\)"
        ).replace("18 bytes for shape", "6 payload bytes for shape")
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert str(info.value).startswith("read_idx: ")


def test_absurd_dimensions_fail_cleanly(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_raw_idx(0x0E, (2**32 - 1,) * 3, bytes(64))))
    with pytest.raises(DatasetError, match="cannot be allocated|truncated"):
        read_idx(path)


def _gzip_fixture(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    return write_idx(tmp_path / "img.gz", array).read_bytes()


def test_truncated_gzip(tmp_path):
    data = _gzip_fixture(tmp_path)
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DatasetError, match=r"expected a complete gzip stream.*EOFError"
    ) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_missing_only_trailer(tmp_path):
    data = _gzip_fixture(tmp_path)
    path = tmp_path / "notrailer.gz"
    path.write_bytes(data[:-8])  # deflate data complete, CRC and size missing
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(path)


def test_gzip_crc_error(tmp_path):
    data = bytearray(_gzip_fixture(tmp_path))
    data[-8] ^= 0xFF  # first byte of the CRC32 trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"damaged.*CRC"):
        read_idx(path)


def test_corrupt_deflate_stream(tmp_path):
    data = bytearray(_gzip_fixture(tmp_path))
    middle = len(data) // 2
    for i in range(middle, middle + 40):
        data[i] ^= 0x5A
    path = tmp_path / "garbled.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
