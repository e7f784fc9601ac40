"""ember.distributed: errors without a group (in process) and the collectives on 2 real ranks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

import ember as em
import ember.distributed as dist
from mpi_launch import run_ranks


@pytest.mark.parametrize("call", [dist.get_rank, dist.get_world_size, dist.get_local_rank, dist.barrier,
                                  lambda: dist.all_reduce(em.ones(2)), dist.destroy_process_group])
def test_calls_before_init_say_what_to_do(call) -> None:
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        call()


def test_bad_backend_and_timeout_are_refused_before_mpi_is_touched() -> None:
    with pytest.raises(ValueError, match="backend 'mpi' or 'nccl', got 'gloo'"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="positive timeout"):
        dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=0))
    assert not dist.is_initialized()


def test_ddp_without_a_group_says_what_to_do() -> None:
    from ember.nn.parallel import DistributedDataParallel

    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedDataParallel(em.nn.Linear(2, 2))


def test_collectives_on_two_ranks(tmp_path: Path) -> None:
    proc, _ = run_ranks([str(Path(__file__).with_name("collectives_worker.py")), str(tmp_path)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, res in enumerate(ranks):
        assert (res["rank"], res["world"], res["local_rank"], res["backend"]) == (r, 2, r, "mpi")
        assert res["SUM"] == [3.0, -6.0, 10.5]
        assert res["AVG"] == [1.5, -3.0, 5.25]
        assert res["MAX"] == [2.0, -2.0, 7.0]
        assert res["MIN"] == [1.0, -4.0, 3.5]
        assert res["PRODUCT"] == [2.0, 8.0, 24.5]
        assert res["broadcast"] == [1.0, 11.0]
        assert res["all_gather"] == [[0, 0], [1, 2]]
        assert res["strided"] == [[3.0, 3.0]] * 3
        assert res["after_destroy"] is False
        errors = res["errors"]
        assert len(errors) == 4
        assert "expected 0 <= src < 2, got 2" in errors[0]
        assert "expected a list of 2 tensors, got 1" in errors[1]
        assert "expected a Tensor, got list" in errors[2]
        assert "already initialised" in errors[3]
