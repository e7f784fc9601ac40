"""Smoke tests of the acceptance scripts (benchmarks/accuracy_parity.py, benchmarks/book_experiments.py).

Tiny settings on scikit-learn's digits (always available offline): the scripts
run end to end, write JSON of the documented structure with finite numbers,
and the parity script's ember and PyTorch losses agree step by step when both
start from the same weights and batches.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import accuracy_parity, book_experiments

EPOCH_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "samples_per_s")


def _is_fraction_of(value: float, n: int) -> bool:
    """``value`` is a count of correct answers divided by ``n`` (what an accuracy over n samples must be)."""
    return 0 <= value <= 1 and abs(value * n - round(value * n)) < 1e-6


def _finite_epochs(epochs: list, n: int, n_train: int | None = None, n_test: int | None = None) -> None:
    assert len(epochs) == n
    for i, e in enumerate(epochs, 1):
        assert e["epoch"] == i
        for k in EPOCH_KEYS:
            assert math.isfinite(e[k]), (k, e)
        assert 0.0 <= e["train_accuracy"] <= 1.0 and 0.0 <= e["test_accuracy"] <= 1.0
        if n_train is not None:
            assert _is_fraction_of(e["train_accuracy"], n_train), (e, n_train)
        if n_test is not None:
            assert _is_fraction_of(e["test_accuracy"], n_test), (e, n_test)


def test_parity_ember_only_writes_results(tmp_path):
    """--no-torch: the ember side alone, through the CLI, with the reproducing command in the markdown."""
    out = accuracy_parity.main(["--case", "two_layer_net", "--dataset", "digits", "--epochs", "2",
                                "--max-train", "200", "--no-torch", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "accuracy_parity.json").read_text())
    assert saved == json.loads(json.dumps(out))
    case = saved["cases"]["two_layer_net"]
    assert case["settings"]["n_train"] == 200 and case["settings"]["optimizer"] == "SGD"
    _finite_epochs(case["ember"]["epochs"], 2, n_train=200, n_test=case["settings"]["n_test"])
    # 2 epochs of 2 batches barely move the book's 0.01-init net: the loss stays at ln(10), nothing diverges.
    assert all(abs(e["train_loss"] - math.log(10)) < 0.05 for e in case["ember"]["epochs"])
    assert case["settings"]["issue_settings"] is False
    assert "torch" not in case and "lockstep" not in case
    assert set(case["targets"]["met"]) == {"min_test_accuracy"}
    assert case["machine"]["cpu_count"] >= 1
    md = (tmp_path / "accuracy_parity.md").read_text()
    assert "python -m ember.train --model two_layer_net --dataset digits --epochs 2" in md


def test_parity_with_torch_agrees_step_by_step(tmp_path):
    """SimpleConvNet + Adam: same initial weights and batch order -> the same losses, step after step."""
    pytest.importorskip("torch", reason="PyTorch is needed for the twin run")
    accuracy_parity.main(["--case", "simple_convnet", "--dataset", "digits", "--epochs", "1", "--max-train", "300",
                          "--max-test", "100", "--lockstep", "3", "--out", str(tmp_path)])
    case = json.loads((tmp_path / "accuracy_parity.json").read_text())["cases"]["simple_convnet"]
    n_test = case["settings"]["n_test"]
    _finite_epochs(case["ember"]["epochs"], 1, n_train=300, n_test=n_test)
    _finite_epochs(case["torch"]["epochs"], 1, n_train=300, n_test=n_test)
    # Same weights, same batches: the accuracies differ by at most a sample or two (float32 near-ties).
    for k, n in (("train_accuracy", 300), ("test_accuracy", n_test)):
        assert abs(case["diff_ember_minus_torch"][0][k]) <= 2 / n, (k, case["diff_ember_minus_torch"])
    lock = case["lockstep"]
    assert lock["steps"] == 3 and len(lock["ember_loss"]) == len(lock["torch_loss"]) == 3
    assert lock["step1_rel_loss_diff"] < 1e-5, lock
    assert lock["max_rel_loss_diff"] < 1e-4, lock
    # Adam divides by sqrt(v): a gradient element near 0 can get an lr-sized step in one framework and a
    # differently signed one in the other, so parameters are compared at the scale of lr (1e-3), not 1e-6.
    assert lock["param_max_abs_diff_after"] < 1e-3, lock
    # Whole-epoch numbers agree too (same data order): float32 noise only.
    assert abs(case["diff_ember_minus_torch"][0]["train_loss"]) < 1e-3, case["diff_ember_minus_torch"]
    assert "max_gap_vs_torch" in case["targets"]["met"]


def test_book_experiments_write_curves(tmp_path):
    out = book_experiments.main(["--dataset", "digits", "--bn-train", "300", "--bn-epochs", "4", "--bn-scales", "0.1",
                                 "he", "--of-train", "100", "--of-epochs", "25", "--max-test", "200",
                                 "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "book_experiments.json").read_text())
    assert saved == json.loads(json.dumps(out))
    bn = saved["batchnorm"]
    assert [r["weight_init_std"] for r in bn["runs"]] == [0.1, "he"]
    for run in bn["runs"]:
        for key in ("batchnorm", "plain"):
            curve = run[key]
            assert len(curve["train_accuracy"]) == len(curve["test_accuracy"]) == 4
            assert all(_is_fraction_of(a, 300) for a in curve["train_accuracy"])
            assert all(_is_fraction_of(a, 200) for a in curve["test_accuracy"])
    # With He init the batch-norm net learns within 4 epochs (chance is 0.1).
    he_bn = bn["runs"][1]["batchnorm"]["train_accuracy"]
    assert he_bn[-1] >= he_bn[0] + 0.05 and he_bn[-1] > 0.15, he_bn
    of = saved["overfitting"]
    assert set(of["variants"]) == {"plain", "weight_decay", "dropout"}
    assert of["settings"]["n_train"] == 100 and of["settings"]["n_test"] == 200
    for v in of["variants"].values():
        assert len(v["train_accuracy"]) == 25 and all(math.isfinite(x) for x in v["train_loss"])
        assert all(_is_fraction_of(a, 100) for a in v["train_accuracy"])
        assert math.isfinite(v["final_gap"]) and math.isfinite(v["gap_last10_mean"])
    # 25 epochs on 100 images: the plain net learns well above chance (0.1) and its loss falls.
    plain = of["variants"]["plain"]
    assert plain["train_accuracy"][-1] > 0.3 and plain["train_loss"][-1] < plain["train_loss"][0] - 0.3, plain
    # Weight decay adds the book's 0.5*lambda*sum W^2 to the loss, so its loss is the larger one at epoch 1.
    assert of["variants"]["weight_decay"]["train_loss"][0] > of["variants"]["plain"]["train_loss"][0]
    for name in ("book_experiments.md", "book_experiments_batchnorm.png", "book_experiments_overfitting.png"):
        assert (tmp_path / name).stat().st_size > 0, name
