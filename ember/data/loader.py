"""Batching: :class:`DataLoader` turns a dataset into (shuffled, resumable) mini-batches.

A dataset that can hand over its whole columns as numpy arrays (a method
``arrays()`` returning a tuple of arrays with equal first dimension, as MNIST,
FashionMNIST, Digits and TensorDataset do) is batched by fancy-indexing those
arrays with a slice of the epoch's permutation: one vectorised gather per batch
and column instead of a Python loop over samples. Any other dataset with
``__len__`` and ``__getitem__`` falls back to stacking items.

Shuffling uses a numpy ``Generator``; each epoch (each ``iter(loader)``) draws
a fresh permutation from it. ``state_dict()`` captures the generator state at
the start of the running epoch plus the number of batches already handed out,
so a run restored from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ember.data.dataset import as_numpy
from ember.data.tensors import device_converter, host_converter, target_device
from ember.generator import spawn_generator

_STATE_VERSION = 1


def _default_generator() -> np.random.Generator:
    """The generator a DataLoader shuffles with when given no seed (drawn lazily, at the first
    shuffled epoch, so a ``manual_seed`` between building the loader and iterating it counts)."""
    return spawn_generator()


def _jsonable(value: Any) -> Any:
    """Turns numpy scalars/arrays inside a bit-generator state into JSON types."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


class DataLoader:
    """Iterates a dataset in (optionally shuffled) mini-batches of ember Tensors.

    Every batch is a tuple with one Tensor per dataset column, e.g.
    ``(images (B, 1, 28, 28) float32, labels (B,) int64)``. Batches are copies,
    so editing one in place never changes the dataset. Tensors are created on
    the CPU, or on ``device`` when one is given (CUDA: copied per batch).

    Args:
        dataset: an object with ``__len__`` and either ``arrays()`` (fast path)
            or ``__getitem__`` returning a tuple (or one value) per sample.
        batch_size: samples per batch, a positive int.
        shuffle: draw a new permutation of the samples every epoch.
        sampler: instead of ``shuffle``, any iterable of sample indices (read once per
            epoch, e.g. a ``DistributedSampler`` or a list); not with ``shuffle=True``.
        drop_last: drop the final batch when it is smaller than ``batch_size``.
        seed: seed of the shuffling generator; None draws it from ember's global RNG.
        device: where batches are delivered (None/"cpu": the CPU). For a CUDA
            device each batch is copied to the GPU as it is drawn.
        pin_memory: stage host->GPU copies in page-locked buffers (asynchronous
            copies); None means "yes when ``device`` is CUDA". Ignored on the CPU.

    Raises:
        ValueError: an argument has the wrong type or value.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device: Any = None,
        pin_memory: bool | None = None,
        sampler: Any = None,
    ) -> None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0
        ):
            raise ValueError(
                f"DataLoader: expected batch_size a positive int, got {batch_size!r}"
            )
        for flag_name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(
                    f"DataLoader: expected {flag_name} a bool, got {flag!r}"
                )
        if seed is not None and (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or seed < 0
        ):
            raise ValueError(
                f"DataLoader: expected seed None or a non-negative int, got {seed!r}"
            )
        if not hasattr(dataset, "__len__") or not (
            callable(getattr(dataset, "arrays", None))
            or hasattr(dataset, "__getitem__")
        ):
            raise ValueError(
                "DataLoader: expected a dataset with __len__ and arrays() or "
                f"__getitem__, got {type(dataset).__name__}"
            )
        if pin_memory is not None and not isinstance(pin_memory, (bool, np.bool_)):
            raise ValueError(f"DataLoader: expected pin_memory None or a bool, got {pin_memory!r}")
        if sampler is not None and (shuffle or not hasattr(sampler, "__iter__")):
            raise ValueError(
                "DataLoader: sampler is mutually exclusive with shuffle=True (the sampler sets the order)"
                if shuffle else f"DataLoader: expected sampler to be an iterable of indices, got {sampler!r}"
            )
        self.sampler = sampler
        self.device = target_device(device)
        self.pin_memory = None if pin_memory is None else bool(pin_memory)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = None if seed is None else int(seed)
        self._generator: np.random.Generator | None = None
        self._epoch = 0  # epochs completed
        self._in_epoch = False
        # Generator state before this epoch's permutation was drawn.
        self._epoch_start: dict | None = None
        self._position = 0  # batches handed out in the running epoch
        self._pending: tuple[dict | None, int] | None = None  # set by load_state_dict

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return (
            n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        )

    def _rng(self) -> np.random.Generator:
        if self._generator is None:
            self._generator = (
                np.random.default_rng(self.seed)
                if self.seed is not None
                else _default_generator()
            )
        return self._generator

    def _source_arrays(self) -> tuple[np.ndarray, ...] | None:
        """The dataset's full arrays when it offers them (fast path), else None."""
        get_arrays = getattr(self.dataset, "arrays", None)
        if not callable(get_arrays):
            return None
        arrays = tuple(get_arrays())
        n = len(self.dataset)
        if not arrays or any(
            not isinstance(a, np.ndarray) or a.ndim == 0 or a.shape[0] != n
            for a in arrays
        ):
            got = [getattr(a, "shape", type(a).__name__) for a in arrays]
            raise ValueError(
                "DataLoader: expected dataset.arrays() to return arrays of first "
                f"dimension len(dataset)={n}, got {got}"
            )
        return arrays

    def _gather(
        self, arrays: tuple[np.ndarray, ...] | None, idx: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        if arrays is not None:
            return tuple(a[idx] for a in arrays)
        items = [self.dataset[int(i)] for i in idx]
        items = [item if isinstance(item, tuple) else (item,) for item in items]
        width = len(items[0])
        if any(len(item) != width for item in items):
            raise ValueError(
                f"DataLoader: expected every sample to have {width} fields, got "
                f"{sorted({len(item) for item in items})}"
            )
        return tuple(
            np.stack([as_numpy(item[k]) for item in items]) for k in range(width)
        )

    def iter_arrays(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Runs one epoch, yielding batches as tuples of numpy arrays.

        This is what ``iter(loader)`` runs before converting to Tensors; it is
        public for code that wants raw arrays. The epoch starts (and its
        permutation is drawn) at the first ``next()``.
        """
        arrays = self._source_arrays()
        n = len(self.dataset)
        state, start = self._pending if self._pending is not None else (None, 0)
        self._pending = None
        if self.sampler is not None:  # one epoch of the sampler's indices, read up front
            from .subsets import sampler_order

            self._epoch_start = None
            order = sampler_order(self.sampler, n)
        elif self.shuffle:
            rng = self._rng()
            if state is not None:
                rng.bit_generator.state = state
            self._epoch_start = _jsonable(rng.bit_generator.state)
            order = rng.permutation(n)
        else:
            self._epoch_start = None
            order = np.arange(n)
        self._in_epoch = True
        self._position = start
        n_batches = len(self) if self.sampler is None else (
            len(order) // self.batch_size if self.drop_last else math.ceil(len(order) / self.batch_size))
        for b in range(start, n_batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = self._gather(arrays, idx)
            # Counted before yielding, so a checkpoint taken now resumes after it.
            self._position = b + 1
            yield batch
        self._in_epoch = False
        self._position = 0
        self._epoch += 1

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        from_numpy = host_converter()  # fail before the epoch consumes randomness
        if self.device is None:
            return (tuple(from_numpy(a) for a in batch) for batch in self.iter_arrays())
        to_device = device_converter(self.device, self.pin_memory)  # raises now if CUDA is missing
        return (tuple(to_device(a) for a in batch) for batch in self.iter_arrays())

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for resuming the batch sequence exactly.

        Returns:
            A dict with the loader's settings, the completed-epoch count, the
            generator state to draw the current (or next) epoch's permutation
            from, and ``position``, the batches of that epoch already handed out.
        """
        if self._in_epoch and self._position < len(self):
            generator, position = self._epoch_start, self._position
        elif self._in_epoch:
            # Every batch was handed out but the iterator has not been exhausted
            # yet: report the finished epoch, as a fully drained loop would.
            generator = (
                _jsonable(self._rng().bit_generator.state) if self.shuffle else None
            )
            return self._state(generator, 0, self._epoch + 1)
        elif self._pending is not None:
            generator, position = self._pending
        else:
            generator = (
                _jsonable(self._rng().bit_generator.state) if self.shuffle else None
            )
            position = 0
        return self._state(generator, position, self._epoch)

    def _state(
        self, generator: dict | None, position: int, epoch: int
    ) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "dataset_len": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "epoch": epoch,
            "position": position,
            "generator": generator,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` output; the next ``iter()`` continues from it.

        Raises:
            ValueError: the state is malformed or was saved by a loader with a
                different dataset length, batch size, shuffle or drop_last.
        """
        keys = {
            "version",
            "dataset_len",
            "batch_size",
            "shuffle",
            "drop_last",
            "epoch",
            "position",
            "generator",
        }
        if not isinstance(state, dict) or set(state) != keys:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"DataLoader.load_state_dict: expected keys {sorted(keys)}, got {got}"
            )
        if state["version"] != _STATE_VERSION:
            raise ValueError(
                f"DataLoader.load_state_dict: expected version {_STATE_VERSION}, "
                f"got {state['version']!r}"
            )
        current = {
            "dataset_len": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }
        for key, value in current.items():
            if state[key] != value:
                raise ValueError(
                    f"DataLoader.load_state_dict: expected {key}={value!r} as in this "
                    "loader, "
                    f"got {state[key]!r} in the saved state"
                )
        position = state["position"]
        if not isinstance(position, int) or not 0 <= position <= len(self):
            raise ValueError(
                f"DataLoader.load_state_dict: expected position in 0..{len(self)}, "
                f"got {position!r}"
            )
        generator = state["generator"]
        if self.shuffle:
            if not isinstance(generator, dict) or "bit_generator" not in generator:
                raise ValueError(
                    "DataLoader.load_state_dict: expected a numpy bit_generator state "
                    "dict, "
                    f"got {generator!r}"
                )
            rng = self._rng()
            name = generator["bit_generator"]
            if rng.bit_generator.__class__.__name__ != name:
                bit_generator_cls = getattr(np.random, name, None)
                if bit_generator_cls is None:
                    raise ValueError(
                        "DataLoader.load_state_dict: expected a numpy bit generator "
                        f"name, got {name!r}"
                    )
                self._generator = np.random.Generator(bit_generator_cls())
        self._epoch = int(state["epoch"])
        self._in_epoch = False
        self._pending = (generator if self.shuffle else None, position)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})"
        )
