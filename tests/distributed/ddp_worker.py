"""One rank of the DDP tests: ``mpiexec -n N python -m mpi4py ddp_worker.py MODE OUT_DIR``.

Modes: ``train`` (several SGD steps on this rank's shard), ``nosync`` (two
micro-batches, the first under ``no_sync``), ``unused`` (a layer that never
gets a gradient), ``stall`` (rank 1 sleeps inside a step), ``die`` (rank 1 exits).
Each rank writes its final parameters and losses to ``OUT_DIR/rank<r>.npz``.
"""

from __future__ import annotations

import datetime
import os
import sys
import time

import numpy as np

import ember as em
import ember.distributed as dist
from ember.nn.parallel import DistributedDataParallel

STEPS, SHARD, FEATURES, CLASSES = 4, 6, 10, 3


class WithSpare(em.nn.Module):
    """A network with one registered layer that forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = em.nn.Sequential(em.nn.Linear(FEATURES, 16), em.nn.ReLU(), em.nn.Linear(16, CLASSES))
        self.spare = em.nn.Linear(4, 4)

    def forward(self, x: em.Tensor) -> em.Tensor:
        return self.net(x)


def make_model(seed: int, unused: bool = False) -> em.nn.Module:
    em.manual_seed(seed)
    if unused:
        return WithSpare()
    return em.nn.Sequential(em.nn.Linear(FEATURES, 16), em.nn.ReLU(), em.nn.Linear(16, CLASSES))


def global_batch(step: int, world: int, micro: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 * step + micro)
    x = rng.standard_normal((SHARD * world, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, SHARD * world)
    return x, y


def shard(a: np.ndarray, rank: int) -> np.ndarray:
    return a[rank * SHARD : (rank + 1) * SHARD]


def main() -> None:
    mode, out_dir = sys.argv[1], sys.argv[2]
    timeout = float(os.environ.get("DDP_TEST_TIMEOUT", "60"))
    device = os.environ.get("DDP_TEST_DEVICE", "cpu")
    dist.init_process_group(os.environ.get("DDP_TEST_BACKEND", "mpi"), timeout=datetime.timedelta(seconds=timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model(100 + rank, unused=(mode == "unused")).to(device)  # different init on purpose
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.0005)  # several buckets
    opt = em.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        micros = 2 if mode == "nosync" else 1
        for micro in range(micros):
            x, y = global_batch(step, world, micro)
            xs, ys = em.from_numpy(shard(x, rank)).to(device), em.from_numpy(shard(y, rank)).to(device)
            if mode == "stall" and rank == 1 and step == 1:
                time.sleep(600)
            if mode == "die" and rank == 1 and step == 1:
                os._exit(7)
            if micro < micros - 1:
                with ddp.no_sync():
                    em.nn.functional.cross_entropy(ddp(xs), ys).backward()
            else:
                loss = em.nn.functional.cross_entropy(ddp(xs), ys)
                loss.backward()
                losses.append(loss.item())
        opt.step()
    arrays = {f"p_{name}": p.cpu().numpy() for name, p in model.named_parameters()}
    arrays.update({f"g_{name}": p.grad.cpu().numpy() for name, p in model.named_parameters() if p.grad is not None})
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), losses=np.array(losses), **arrays)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
