"""``save`` / ``load``: checkpoints as ``.npz`` archives, written atomically, read without pickle.

Layout of a checkpoint: one ``.npy`` entry per array, named by its flattened
key path (``model/fc1.weight``), plus the entry ``__ember_meta__``, a uint8
array holding UTF-8 JSON: a format tag and a *tree* that mirrors the saved
object, with each array replaced by a reference to its entry.  Plain values
(numbers, strings, bools, None) sit in the tree as JSON; dicts, lists and
tuples are tagged so they come back with their type and their key types.

Nothing is ever pickled: ``numpy.load(..., allow_pickle=False)`` reads the
file, so a crafted checkpoint cannot run code.  Arrays are read from the host
(``Tensor.numpy()``), so saving never moves or modifies a live model.
Writes are atomic (``ember.atomic_files``): a crash leaves either the old
checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from typing import Any

import numpy

from ember.atomic_files import atomic_write
from ember.autograd.tensor import Tensor
from ember.backends.device import get_backend

META_KEY = "__ember_meta__"
FORMAT = "ember.checkpoint"
VERSION = 1
SEPARATOR = "/"

_KEY_TYPES = (str, int, float, bool, type(None))


class _Writer:
    """Walks the object to save, collecting arrays and building the JSON tree."""

    def __init__(self) -> None:
        self.arrays: dict[str, numpy.ndarray] = {}

    def _entry_name(self, path: list) -> str:
        name = SEPARATOR.join(str(p) for p in path) or "value"
        base, n = name, 1
        while name in self.arrays or name == META_KEY:
            name = f"{base}#{n}"
            n += 1
        return name

    def _array(self, kind: str, host: Any, path: list) -> dict:
        host = numpy.asarray(host)
        if host.dtype.hasobject or host.dtype.kind not in "biuf":
            where = SEPARATOR.join(str(p) for p in path) or "<root>"
            raise TypeError(f"save: cannot store an array of dtype {host.dtype} at {where!r} without pickle")
        name = self._entry_name(path)
        self.arrays[name] = host
        return {"__kind__": kind, "entry": name}

    def encode(self, obj: Any, path: list) -> Any:
        if isinstance(obj, Tensor):
            return self._array("tensor", obj.numpy(), path)
        if isinstance(obj, numpy.ndarray):
            return self._array("ndarray", obj, path)
        if isinstance(obj, numpy.generic):
            if obj.dtype.kind not in "biuf":
                raise TypeError(f"save: cannot store a NumPy scalar of dtype {obj.dtype}")
            return {"__kind__": "npscalar", "dtype": obj.dtype.str, "value": _json_number(obj.item())}
        if obj is None or isinstance(obj, (str, bool, int)):
            return obj
        if isinstance(obj, float):
            return _json_number(obj)
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, _KEY_TYPES):
                    raise TypeError(f"save: dict keys must be str, int, float, bool or None, got {type(k).__name__}")
                items.append([_json_number(k) if isinstance(k, float) else k, self.encode(v, path + [k])])
            return {"__kind__": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
        if isinstance(obj, (list, tuple)):
            kind = "list" if isinstance(obj, list) else "tuple"
            return {"__kind__": kind, "items": [self.encode(v, path + [i]) for i, v in enumerate(obj)]}
        where = SEPARATOR.join(str(p) for p in path) or "<root>"
        raise TypeError(
            f"save: cannot store a {type(obj).__name__} at {where!r}; checkpoints hold Tensors, NumPy arrays, "
            "numbers, strings, bools, None and dicts/lists/tuples of them (never pickled objects)"
        )


def _json_number(x: Any) -> Any:
    """JSON has no inf/nan: store them as tagged strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return {"__kind__": "float", "value": repr(x)}
    return x


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a state dict, or nested dicts/lists of them and plain values) to ``path``.

    Args:
        obj: Tensors, NumPy arrays, Python/NumPy scalars, strings, None, and dicts,
            lists and tuples of those, e.g. ``{"model": m.state_dict(), "epoch": 3}``.
        path: the file to (over)write; written exactly at that name (no suffix added).

    Raises:
        TypeError: ``obj`` holds something that cannot be stored without pickle.
        OSError: the file cannot be written; an existing file at ``path`` is left intact.
    """
    writer = _Writer()
    tree = writer.encode(obj, [])
    meta = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=False)
    arrays = dict(writer.arrays)
    arrays[META_KEY] = numpy.frombuffer(meta.encode("utf-8"), dtype=numpy.uint8)

    with atomic_write(path) as f:
        numpy.savez(f, **arrays)


class _Reader:
    def __init__(self, path: str, arrays: dict, backend: Any) -> None:
        self.path, self.arrays, self.backend = path, arrays, backend

    def bad(self, why: str) -> ValueError:
        return ValueError(f"load: {self.path!r} is not a valid ember checkpoint ({why})")

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (str, bool, int, float)):
            return node
        if not isinstance(node, dict) or "__kind__" not in node:
            raise self.bad(f"unexpected metadata node {str(node)[:80]!r}")
        kind = node["__kind__"]
        if kind in ("tensor", "ndarray"):
            try:
                host = self.arrays[node["entry"]]
            except KeyError:
                raise self.bad(f"missing array entry {node.get('entry')!r}") from None
            if host.dtype.kind not in "biuf":  # save never writes others (strings, structured, void)
                raise self.bad(f"array entry {node['entry']!r} has unsupported dtype {host.dtype}")
            if kind == "ndarray":
                return host
            return Tensor._make(self.backend.asarray(host))
        if kind in ("dict", "odict"):
            out = OrderedDict() if kind == "odict" else {}
            for k, v in node["items"]:
                out[self.decode(k) if isinstance(k, dict) else k] = self.decode(v)
            return out
        if kind == "list":
            return [self.decode(v) for v in node["items"]]
        if kind == "tuple":
            return tuple(self.decode(v) for v in node["items"])
        if kind == "npscalar":
            dtype = numpy.dtype(node["dtype"])
            if dtype.kind not in "biuf":
                raise self.bad(f"unsupported scalar dtype {dtype}")
            return dtype.type(self.decode(node["value"]))
        if kind == "float":
            return float(node["value"])
        raise self.bad(f"unknown metadata kind {kind!r}")


def load(path: str | os.PathLike, map_location: Any = None) -> Any:
    """Read a checkpoint written by ``save``; Tensors come back on ``map_location`` (default cpu).

    Args:
        path: the checkpoint file.
        map_location: a device (``"cpu"``, ``"cuda:0"``, ``ember.device``) for the Tensors.

    Returns:
        The saved object: dicts (``OrderedDict`` where one was saved), lists, tuples,
        plain values, Tensors (not requiring grad) and NumPy arrays.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an ember checkpoint (truncated, corrupted, another
            format, or holding pickled data, which is never unpickled); the message names ``path``.
    """
    path = os.fspath(path)
    backend = get_backend(map_location)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such checkpoint file {path!r}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every checkpoint is a zip (.npz); anything else would reach NumPy's pickle advice
        kind = "an empty file" if not magic else f"not a zip/.npz archive (it starts with {magic!r})"
        raise ValueError(f"load: {path!r} is not a valid ember checkpoint ({kind})")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise ValueError("a bare .npy array, not an .npz archive")  # noqa: TRY004 - bad data, not a bad argument
        with archive:
            names = set(archive.files)
            if META_KEY not in names:
                raise ValueError(f"no {META_KEY} entry")
            arrays = {name: archive[name] for name in names}
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    # Whatever a malformed archive makes numpy/zipfile raise (BadZipFile, zlib.error, EOFError,
    # ValueError for pickled data, UnicodeDecodeError ...) becomes one ValueError naming the file.
    except Exception as e:  # noqa: BLE001
        detail = "it holds pickled objects, which ember never unpickles" if "allow_pickle" in str(e) else f"{type(e).__name__}: {e}"
        raise ValueError(f"load: {path!r} is not a valid ember checkpoint ({detail})") from None
    reader = _Reader(path, arrays, backend)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "tree" not in meta:
        raise reader.bad("missing format tag")
    if meta.get("version") != VERSION:
        raise reader.bad(f"unsupported format version {meta.get('version')!r}, this ember reads {VERSION}")
    try:
        return reader.decode(meta["tree"])
    except ValueError:
        raise
    except (KeyError, TypeError, IndexError, OverflowError, RecursionError) as e:
        raise reader.bad(f"malformed metadata: {type(e).__name__}: {e}") from None
