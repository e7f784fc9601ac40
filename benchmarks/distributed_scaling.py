"""Data-parallel scaling: measured here on 2 ranks, and a labelled model for 2-64 ranks.

``python -m benchmarks.distributed_scaling`` launches itself under
``mpiexec -n 2`` (one single-thread rank per core), measures the MPI allreduce
time per message size, each model's per-rank training step with and without
DistributedDataParallel, and the gradient bytes per step. It then models a
ring allreduce over 1 GbE and 10 GbE (time = 2(p-1)·latency + 2(p-1)/p ·
bytes / bandwidth), adds it to the measured compute without overlap (a
conservative bound), and writes results/distributed_scaling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness.timing import median_seconds

RESULTS = Path(__file__).resolve().parent / "results"
SIZES_BYTES = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20]
MODELS = {"two_layer_net": 100, "simple_convnet": 100, "multi_layer_net": 128}
LINKS = {"1 GbE": (117.5e6, 50e-6), "10 GbE": (1.175e9, 20e-6)}  # (bytes/s after TCP, per-hop latency s)
RANKS = [2, 4, 8, 16, 32, 64]


def worker(out: Path) -> None:
    """One rank: allreduce times, step times with and without DDP, gradient sizes."""
    import datetime

    import ember as em
    import ember.distributed as dist
    from ember.nn.parallel import DistributedDataParallel

    dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    doc: dict = {"allreduce": {}, "models": {}}
    for size in SIZES_BYTES:
        t = em.zeros(size // 4)
        dist.all_reduce(t)
        doc["allreduce"][str(size)] = median_seconds(lambda: dist.all_reduce(t), 30)
    for name, batch in MODELS.items():
        em.manual_seed(rank)
        model = em.models.build_model(name, (1, 28, 28), 10)
        rng = np.random.default_rng(rank)
        x = em.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        y = em.from_numpy(rng.integers(0, 10, batch))
        row = {"batch_per_rank": batch,
               "grad_bytes": int(sum(p.data.nbytes for p in model.parameters()))}
        for label, net in (("local", model), ("ddp", DistributedDataParallel(model))):
            opt = em.optim.SGD(net.parameters(), lr=0.01)

            def step() -> None:
                opt.zero_grad()
                em.nn.functional.cross_entropy(net(x), y).backward()
                opt.step()

            for _ in range(3):
                step()
            dist.barrier()
            row[f"{label}_step_s"] = median_seconds(step, 15)
        doc["models"][name] = row
    if rank == 0:
        out.write_text(json.dumps(doc))
    dist.destroy_process_group()


def ring_allreduce_s(nbytes: float, ranks: int, bandwidth: float, latency: float) -> float:
    """Modelled time of a ring allreduce of ``nbytes`` over ``ranks`` machines."""
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def model_rows(measured: dict) -> list[dict]:
    """Weak-scaling model: per-rank batch fixed, compute measured here, allreduce modelled."""
    rows = []
    for name, m in measured["models"].items():
        compute = m["local_step_s"]
        for link, (bw, lat) in LINKS.items():
            for p in RANKS:
                comm = ring_allreduce_s(m["grad_bytes"], p, bw, lat)
                step = compute + comm
                rows.append({"model": name, "link": link, "ranks": p, "compute_s": compute, "allreduce_s": comm,
                             "step_s": step, "efficiency": compute / step, "speedup": p * compute / step})
    return rows


def write_report(measured: dict, machine: dict) -> None:
    from benchmarks.harness.io import write_atomic, write_json

    rows = model_rows(measured)
    write_json(RESULTS / "distributed_scaling.json", {"machine": machine, "measured": measured, "model": rows,
                                                      "links": LINKS})
    lines = [
        "# Data-parallel scaling", "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; 2 MPI ranks (mpiexec, MPICH), one "
        "single-thread rank per core; measured by `python -m benchmarks.distributed_scaling`.", "",
        "## Measured: MPI allreduce, 2 ranks on this machine (median of 30)", "",
        "| message | time | bus bandwidth |", "|---:|---:|---:|",
    ]
    for size, t in measured["allreduce"].items():
        n = int(size)
        lines.append(f"| {n / 1024:.0f} KiB | {t * 1e3:.3f} ms | {n / t / 1e9:.2f} GB/s |")
    lines += ["", "## Measured: training step per rank (median of 15)", "",
              "| model | batch/rank | gradient | local step | DDP step (2 ranks) | DDP overhead |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, m in measured["models"].items():
        lines.append(f"| {name} | {m['batch_per_rank']} | {m['grad_bytes'] / 2**20:.2f} MiB | "
                     f"{m['local_step_s'] * 1e3:.2f} ms | {m['ddp_step_s'] * 1e3:.2f} ms | "
                     f"{(m['ddp_step_s'] / m['local_step_s'] - 1) * 100:+.0f}% |")
    lines += ["", "## Model (not measured): ring allreduce across machines, weak scaling", "",
              "Each machine runs one rank with the per-rank compute measured above; the allreduce is modelled as "
              "2(p-1)·latency + 2(p-1)/p·bytes/bandwidth with "
              + ", ".join(f"{k}: {bw / 1e6:.0f} MB/s, {lat * 1e6:.0f} µs" for k, (bw, lat) in LINKS.items())
              + ". Compute and communication are added without overlap, so real runs with bucket overlap can "
              "do better; stragglers and congestion can do worse.", "",
              "| model | link | ranks | allreduce | step | efficiency | speed-up |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['link']} | {r['ranks']} | {r['allreduce_s'] * 1e3:.2f} ms | "
                     f"{r['step_s'] * 1e3:.2f} ms | {r['efficiency'] * 100:.0f}% | {r['speedup']:.1f}x |")
    write_atomic(RESULTS / "distributed_scaling.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed_scaling", description=__doc__.splitlines()[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(Path(args.worker))
        return 0
    exe = shutil.which("mpiexec")
    if exe is None:
        print("error: mpiexec not found; pip install 'ember[distributed]'", file=sys.stderr)
        return 2
    from benchmarks.harness.machine import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "measured.json"
        env = dict(os.environ, EMBER_NUM_THREADS="1")
        cmd = [exe, "-n", "2", sys.executable, "-m", "mpi4py", "-m", "benchmarks.distributed_scaling",
               "--worker", str(out)]
        subprocess.run(cmd, check=True, env=env)
        measured = json.loads(out.read_text())
    write_report(measured, machine_info())
    print(f"wrote {RESULTS / 'distributed_scaling.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
