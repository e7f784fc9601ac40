"""NCCL's unique id crosses MPI as 128 int8 values and reaches ``NcclCommunicator`` in the form CuPy takes.

CuPy 14's ``nccl.get_unique_id()`` returns ``bytes`` and its communicator takes ``bytes``; older
CuPy used a tuple of ints (-128..127) for both. A GPU run on CuPy 14 failed on the tuple-only code.
"""

from __future__ import annotations

import numpy
import pytest

from ember.distributed import nccl_transport as nt


class _Communicator:
    """A fake ``NcclCommunicator`` that accepts one id type, as the Cython signatures do."""

    accepts: type = bytes
    made: list = []  # noqa: RUF012 - what each construction received

    def __init__(self, size, uid, rank):
        if not isinstance(uid, self.accepts):
            raise TypeError(f"expected {self.accepts.__name__}, got {type(uid).__name__}")
        _Communicator.made.append((size, uid, rank))


class _Nccl:
    NcclCommunicator = _Communicator


@pytest.mark.parametrize("kind", [bytes, tuple])
def test_unique_id_reaches_the_communicator_unchanged(kind):
    raw = numpy.random.default_rng(3).integers(-128, 128, nt._ID_BYTES).astype(numpy.int8)
    given = raw.tobytes() if kind is bytes else tuple(int(v) for v in raw)
    wire = nt.unique_id_as_int8(given)  # what rank 0 broadcasts
    assert wire.dtype == numpy.int8 and numpy.array_equal(wire, raw)
    _Communicator.accepts, _Communicator.made = kind, []
    nt.communicator(_Nccl, 2, wire.copy(), 1)
    assert _Communicator.made == [(2, given, 1)]


def test_an_id_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="128-byte unique id, got 16"):
        nt.unique_id_as_int8(bytes(16))
