"""Data-parallel training across processes: PyTorch's ``torch.distributed`` names on MPI and NCCL.

Launch N processes with ``mpiexec -n N python -m mpi4py your_script.py``; each calls
:func:`init_process_group` and then uses the collectives or wraps its model in
``ember.nn.parallel.DistributedDataParallel``. mpi4py is imported only when a
group is made (``pip install 'ember[distributed]'``).
"""

from ember.distributed.collectives import all_gather, all_reduce, barrier, broadcast
from ember.distributed.process_group import (
    ReduceOp, abort, destroy_process_group, get_backend, get_local_rank, get_rank, get_world_size,
    init_process_group, is_available, is_initialized,
)

__all__ = [
    "ReduceOp", "init_process_group", "destroy_process_group", "is_initialized", "is_available",
    "get_rank", "get_world_size", "get_local_rank", "get_backend", "all_reduce", "broadcast",
    "all_gather", "barrier", "abort",
]
