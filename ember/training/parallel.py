"""``--distributed`` for the CLI: one rank per process under ``mpiexec``, data sharded, rank 0 reports.

``mpiexec -n N python -m mpi4py -m ember.train --distributed`` starts N ranks. Each
rank trains a :class:`~ember.nn.parallel.DistributedDataParallel` copy of the model
on its shard of every batch: ``--batch-size`` stays the *global* batch (split evenly
over the ranks), so N ranks take the same steps on the same data as one process,
and the accuracy to expect is the single-process one. Rank 0 alone prints,
evaluates and writes the run folder; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from ember.training.options import UsageError

_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def env_rank() -> int:
    """This process's rank as the MPI launcher announced it (0 outside ``mpiexec``)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


@dataclass
class Launch:
    """Where this process stands: its rank, how many ranks train, and whether it reports."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def say(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on rank 0 only."""
        if self.is_main:
            print(*args, **kwargs)

    def error(self, message: str) -> None:
        """One ``error:`` line on stderr, from rank 0 only (every rank meets the same mistake)."""
        if self.is_main:
            print(f"error: {message}", file=sys.stderr)


def start(args: Any) -> Launch:
    """Join the process group when ``--distributed`` (MPI for the CPU, NCCL for CUDA)."""
    if not args.distributed:
        return Launch()
    from ember import distributed

    if not distributed.is_available():
        raise UsageError("--distributed needs mpi4py and an MPI library: pip install 'ember[distributed]', then "
                         "mpiexec -n 2 python -m mpi4py -m ember.train --distributed")
    backend = "nccl" if str(args.device).startswith("cuda") else "mpi"
    distributed.init_process_group(backend)
    launch = Launch(distributed.get_rank(), distributed.get_world_size())
    if args.batch_size is not None and args.batch_size % launch.world:
        raise UsageError(f"--batch-size {args.batch_size} must be divisible by the {launch.world} ranks "
                         "(it is the global batch, split evenly)")
    return launch


def shard(train: Any, batch_size: int, seed: int, launch: Launch) -> tuple:
    """``(loader, sampler)`` for this rank: its share of each global batch of ``batch_size``."""
    from ember.data import DataLoader, DistributedSampler

    if launch.world == 1:
        return DataLoader(train, batch_size=batch_size, shuffle=True, seed=seed), None
    if batch_size % launch.world:
        raise UsageError(f"--batch-size {batch_size} must be divisible by the {launch.world} ranks")
    sampler = DistributedSampler(train, launch.world, launch.rank, shuffle=True, seed=seed)
    return DataLoader(train, batch_size=batch_size // launch.world, sampler=sampler), sampler


def wrap(model: Any, launch: Launch) -> Any:
    """The model the ranks train: a DistributedDataParallel wrapper when there are several."""
    if launch.world == 1:
        return model
    from ember.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def combine(metrics: dict, launch: Launch) -> dict:
    """Average the ranks' training loss/accuracy (weighted by their samples) into one report."""
    if launch.world == 1:
        return metrics
    import numpy

    import ember as em
    from ember import distributed

    seen = metrics["seen"]
    totals = em.from_numpy(numpy.array([metrics["loss"] * seen, metrics["accuracy"] * seen, seen]))
    distributed.all_reduce(totals)
    loss_sum, correct, n = totals.numpy().tolist()
    return dict(metrics, loss=loss_sum / max(n, 1), accuracy=correct / max(n, 1), seen=int(n),
                samples_per_s=metrics["samples_per_s"] * launch.world)


def finish() -> None:
    """Leave the process group, if one was joined (after a barrier: rank 0's last save is done)."""
    from ember import distributed

    if distributed.is_initialized():
        distributed.destroy_process_group()
