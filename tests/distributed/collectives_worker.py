"""One rank of the collectives test: ``mpiexec -n N python -m mpi4py collectives_worker.py OUT_DIR``."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import ember as em
import ember.distributed as dist


def main() -> None:
    dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=30))
    r, world = dist.get_rank(), dist.get_world_size()
    result: dict = {"rank": r, "world": world, "local_rank": dist.get_local_rank(), "backend": dist.get_backend()}
    for op in ("SUM", "AVG", "MAX", "MIN", "PRODUCT"):
        t = em.tensor([1.0, -2.0, 3.5], dtype=em.float64) * (r + 1)
        dist.all_reduce(t, getattr(dist.ReduceOp, op))
        result[op] = t.tolist()
    t = em.tensor([float(r), 10.0 + r])
    dist.broadcast(t, src=world - 1)
    result["broadcast"] = t.tolist()
    gathered = [em.zeros(2, dtype=em.int64) for _ in range(world)]
    dist.all_gather(gathered, em.tensor([r, 2 * r], dtype=em.int64))
    result["all_gather"] = [g.tolist() for g in gathered]
    strided = em.zeros((3, 4))[:, ::2]  # a non-contiguous view is reduced in place too
    strided.data[...] = r + 1
    dist.all_reduce(strided)
    result["strided"] = strided.tolist()
    errors = []
    for call in (lambda: dist.broadcast(em.ones(1), src=world), lambda: dist.all_gather([em.ones(1)], em.ones(1)),
                 lambda: dist.all_reduce([1.0]), lambda: dist.init_process_group("mpi")):
        try:
            call()
        except (ValueError, TypeError, RuntimeError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    result["errors"] = errors
    dist.barrier()
    dist.destroy_process_group()
    result["after_destroy"] = dist.is_initialized()
    Path(sys.argv[1], f"rank{r}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
