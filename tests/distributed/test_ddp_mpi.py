"""DistributedDataParallel under a real 2-rank ``mpiexec``, checked against one process.

Each test launches ``ddp_worker.py`` on two ranks and compares what the ranks
wrote with references computed here: bit-exact against gradients of the two
shards summed in rank order, and to float32 tolerance against one process on
the concatenated batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ember as em
import ddp_worker as w
from mpi_launch import run_ranks

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(mode: str, out: Path, ranks: int = 2, timeout_s: float = 60, limit: float = 120,
           **env_extra: str) -> tuple:
    return run_ranks([str(WORKER), mode, str(out)], ranks, limit, DDP_TEST_TIMEOUT=str(timeout_s), **env_extra)


def load_ranks(out: Path, ranks: int = 2) -> list[dict]:
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(ranks)]


def reference(world: int, micros: int, concatenated: bool, unused: bool = False,
              device: str = "cpu") -> tuple[dict, list]:
    """Train rank 0's initial model in one process, as DDP should."""
    model = w.make_model(100, unused=unused).to(device)  # rank 0's init: DDP broadcasts it
    opt = em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = [p for _, p in model.named_parameters()]
    losses = []
    for step in range(w.STEPS):
        opt.zero_grad()
        if concatenated:  # one process, the whole global batch of every micro-step
            for micro in range(micros):
                x, y = w.global_batch(step, world, micro)
                loss = em.nn.functional.cross_entropy(model(em.from_numpy(x).to(device)), em.from_numpy(y).to(device))
                loss.backward()
            losses.append(float("nan"))
        else:  # per-rank accumulated grads, summed in rank order, divided by the world size
            total = [None] * len(params)
            rank_losses = []
            for r in range(world):
                for p in params:
                    p.grad = None
                for micro in range(micros):
                    x, y = w.global_batch(step, world, micro)
                    xs = em.from_numpy(w.shard(x, r)).to(device)
                    ys = em.from_numpy(w.shard(y, r)).to(device)
                    loss = em.nn.functional.cross_entropy(model(xs), ys)
                    loss.backward()
                rank_losses.append(loss.item())
                for k, p in enumerate(params):
                    g = p.grad.cpu().numpy() if p.grad is not None else np.zeros_like(p.cpu().numpy())
                    total[k] = g.copy() if total[k] is None else total[k] + g
            for p, g in zip(params, total):
                p.grad = em.from_numpy(g / np.float32(world)).to(device)
            losses.append(rank_losses)
        opt.step()
    return {f"p_{n}": p.cpu().numpy() for n, p in model.named_parameters()}, losses


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path


def test_two_ranks_equal_the_summed_shards_bit_for_bit(out: Path) -> None:
    proc, _ = launch("train", out)
    assert proc.returncode == 0, proc.stderr
    r0, r1 = load_ranks(out)
    exact, losses = reference(2, 1, concatenated=False)
    for key, value in exact.items():
        np.testing.assert_array_equal(r0[key], value, err_msg=key)
        np.testing.assert_array_equal(r1[key], value, err_msg=key)
    np.testing.assert_array_equal(r0["losses"], [l[0] for l in losses])
    np.testing.assert_array_equal(r1["losses"], [l[1] for l in losses])


def test_two_ranks_match_one_process_on_the_concatenated_batch(out: Path) -> None:
    proc, _ = launch("train", out)
    assert proc.returncode == 0, proc.stderr
    r0, _ = load_ranks(out)
    big, _ = reference(2, 1, concatenated=True)
    for key, value in big.items():
        np.testing.assert_allclose(r0[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_no_sync_accumulation_equals_the_larger_batch(out: Path) -> None:
    proc, _ = launch("nosync", out)
    assert proc.returncode == 0, proc.stderr
    r0, r1 = load_ranks(out)
    exact, _ = reference(2, 2, concatenated=False)
    big, _ = reference(2, 2, concatenated=True)
    for key in exact:
        np.testing.assert_array_equal(r0[key], exact[key], err_msg=key)
        np.testing.assert_array_equal(r1[key], r0[key], err_msg=key)
        np.testing.assert_allclose(r0[key], big[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_parameter_without_gradient_does_not_deadlock(out: Path) -> None:
    proc, _ = launch("unused", out, timeout_s=20)
    assert proc.returncode == 0, proc.stderr
    r0, r1 = load_ranks(out)
    for key in r0:
        if key != "losses":  # each rank's loss is its own shard's
            np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
    np.testing.assert_array_equal(r0["g_spare.weight"], 0.0)
    exact, _ = reference(2, 1, concatenated=False, unused=True)
    for key, value in exact.items():
        np.testing.assert_array_equal(r0[key], value, err_msg=key)


def test_a_stalled_rank_ends_the_job_within_the_timeout(out: Path) -> None:
    proc, elapsed = launch("stall", out, timeout_s=3, limit=90)
    assert proc.returncode != 0
    assert "rank 0/2" in proc.stderr and "all_reduce" in proc.stderr and "did not complete within 3 s" in proc.stderr
    assert elapsed < 60, f"the job took {elapsed:.1f} s to end"


@pytest.mark.slow
def test_a_stalled_rank_ends_the_job_with_the_issue_timeout(out: Path) -> None:
    proc, elapsed = launch("stall", out, timeout_s=15, limit=120)
    assert proc.returncode != 0 and "did not complete within 15 s" in proc.stderr
    assert elapsed < 90


def test_a_dead_rank_ends_the_job(out: Path) -> None:
    proc, elapsed = launch("die", out, timeout_s=10, limit=90)
    assert proc.returncode != 0
    assert elapsed < 60


@pytest.mark.gpu
def test_one_rank_nccl_equals_plain_training_on_the_gpu(out: Path) -> None:
    if not em.cuda.is_available():
        pytest.skip("needs a CUDA device and CuPy")
    proc, _ = launch("train", out, ranks=1, DDP_TEST_BACKEND="nccl", DDP_TEST_DEVICE="cuda")
    assert proc.returncode == 0, proc.stderr
    (r0,) = load_ranks(out, 1)
    plain, _ = reference(1, 1, concatenated=True, device="cuda")
    for key, value in plain.items():
        np.testing.assert_allclose(r0[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.gpu
def test_two_ranks_sharing_one_gpu_through_host_memory_equal_the_cpu_reference(out: Path) -> None:
    if not em.cuda.is_available():
        pytest.skip("needs a CUDA device and CuPy")
    proc, _ = launch("train", out, DDP_TEST_BACKEND="mpi", DDP_TEST_DEVICE="cuda")
    assert proc.returncode == 0, proc.stderr
    r0, r1 = load_ranks(out)
    exact, _ = reference(2, 1, concatenated=False)
    for key, value in exact.items():
        np.testing.assert_allclose(r0[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(r1[key], r0[key], err_msg=key)
