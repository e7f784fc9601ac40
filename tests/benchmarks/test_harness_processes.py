"""``--processes K``: every target gets K worker processes, each case is set up in all of them, and the rounds
rotate over them, so one process's draw does not decide a target's median."""

from __future__ import annotations

import pytest

from benchmarks import __main__ as cli
from benchmarks.harness import procs, runner, schema
from benchmarks.targets import resolve


def test_samples_rotate_over_the_workers_of_each_target(monkeypatch):
    calls, pids = [], {}
    real = procs.Worker.request

    def spy(self, msg):
        answer = real(self, msg)
        calls.append((self, msg["cmd"]))
        pids[self] = self.proc.pid
        return answer

    monkeypatch.setattr(procs.Worker, "request", spy)
    opts = runner.Options(quick=True, repeats=4, case_filter=["matmul 64"], roofline=False, progress=False,
                          processes=2, min_sample_s=0.001)
    run = runner.Runner(resolve(["ember-numpy"]), opts, ["test"])
    try:
        run.probe_all()
        assert len(run._all_workers("ember-numpy")) == 2
        doc = run.run_suite("ops")
    finally:
        run.close()
    schema.validate(doc)
    assert doc["settings"]["processes"] == 2
    (result,) = [r for r in doc["results"] if r["target"] == "ember-numpy"]
    assert result["status"] == "ok" and len(result["samples_s"]) == 4
    by_cmd = {}
    for worker, cmd in calls:
        by_cmd.setdefault(cmd, []).append(worker)
    first, second = run._all_workers("ember-numpy")
    assert set(by_cmd["probe"]) == {first, second} and set(by_cmd["setup"]) == {first, second}
    assert by_cmd["sample"] == [first, second, first, second]  # round r samples worker r % 2
    assert pids[first] != pids[second]
    assert set(by_cmd["teardown"]) == {first, second}
    assert first.log_path != second.log_path and first.proc is None and second.proc is None  # closed


def test_processes_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["train", "--processes", "0"])
    assert "--processes must be >= 1, got 0" in capsys.readouterr().err


def test_the_default_is_one_worker():
    assert runner.Options().processes == 1 and cli.parse_args(["train"]).processes == 1
