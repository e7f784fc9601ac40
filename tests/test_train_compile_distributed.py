"""``python -m ember.train --compile`` and ``--distributed``: same run as eager / one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy

import ember as em
from ember.train import main
from mpi_launch import run_ranks

COMMON = ["--dataset", "digits", "--progress", "off", "--no-plot"]


def _history(folder: Path) -> dict:
    return json.loads((folder / "history.json").read_text())


def test_compiled_training_equals_eager_training_bit_for_bit(tmp_path):
    args = COMMON + ["--model", "simple_convnet", "--epochs", "2", "--max-train", "600"]
    assert main(args + ["--out", str(tmp_path / "eager")]) == 0
    assert main(args + ["--out", str(tmp_path / "compiled"), "--compile"]) == 0
    eager, compiled = _history(tmp_path / "eager"), _history(tmp_path / "compiled")
    assert eager["steps"] == compiled["steps"]  # every step's loss, exactly
    a = em.load(tmp_path / "eager" / "checkpoint.npz")["model"]
    b = em.load(tmp_path / "compiled" / "checkpoint.npz")["model"]
    for k in a:
        numpy.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)


def test_compile_and_distributed_together_is_one_error_line(capsys):
    assert main(COMMON + ["--compile", "--distributed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --compile and --distributed")


def test_two_ranks_reach_the_single_process_accuracy(tmp_path):
    """The issue's check on the embedded digits: 2 ranks within 1 point of one process."""
    proc, _ = run_ranks(["-m", "ember.train", "--distributed", "--out", str(tmp_path / "two")] + COMMON)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("final test accuracy") == 1  # rank 0 alone reports
    assert "2 ranks" in proc.stdout.splitlines()[0]
    assert main(COMMON + ["--out", str(tmp_path / "one")]) == 0
    two = _history(tmp_path / "two")["epochs"][-1]["test_accuracy"]
    one = _history(tmp_path / "one")["epochs"][-1]["test_accuracy"]
    assert abs(two - one) <= 0.01, (one, two)
    assert two >= 0.95


def test_distributed_refuses_a_batch_the_ranks_cannot_split(tmp_path):
    proc, _ = run_ranks(["-m", "ember.train", "--distributed", "--batch-size", "51", "--out", str(tmp_path)] + COMMON,
                        timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: --batch-size 51 must be divisible by the 2 ranks (it is the global batch, split evenly)"]
    assert "Traceback" not in proc.stderr


def test_distributed_resume_is_bit_exact(tmp_path):
    """2 ranks: 3 epochs straight == 2 epochs, then --resume to 3 (every parameter, bit for bit)."""
    base = ["-m", "ember.train", "--distributed", "--model", "two_layer_net", "--max-train", "600"] + COMMON
    for extra in (["--epochs", "3", "--out", str(tmp_path / "straight")],
                  ["--epochs", "2", "--out", str(tmp_path / "split")],
                  ["--epochs", "3", "--out", str(tmp_path / "split"), "--resume"]):
        proc, _ = run_ranks(base + extra)
        assert proc.returncode == 0, proc.stderr
    a = em.load(tmp_path / "straight" / "checkpoint.npz")["model"]
    b = em.load(tmp_path / "split" / "checkpoint.npz")["model"]
    for k in a:
        numpy.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
