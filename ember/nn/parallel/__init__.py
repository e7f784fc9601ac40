"""Parallel wrappers for modules: :class:`DistributedDataParallel`."""

from ember.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
