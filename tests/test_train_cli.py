"""End-to-end tests of ``python -m ember.train``: accuracy on real data, artifacts, resume, NaN stop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy
import pytest

import ember as em
from ember.train import main


def test_simple_convnet_he_init_learns_fashion_mnist_subset(tmp_path, capsys, fashion_dir):
    """The issue's CI-sized check: 2,000 images, 2 epochs, He init -> test accuracy >= 65%."""
    code = main(["--dataset", "fashion-mnist", "--data-dir", str(fashion_dir), "--max-train", "2000", "--epochs", "2",
                 "--init", "he", "--out", str(tmp_path), "--no-plot", "--progress", "off"])
    assert code == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["dataset"] == "fashion-mnist"
    final = history["epochs"][-1]
    assert final["test_accuracy"] >= 0.65, final
    assert history["epochs"][1]["train_loss"] < history["epochs"][0]["train_loss"]
    out = capsys.readouterr().out
    assert "dataset: fashion-mnist (requested with --dataset)" in out


def test_default_run_without_data_learns_the_bundled_digits(tmp_path, capsys, monkeypatch):
    """No data anywhere: the defaults picked for digits (He init, 15 epochs) reach >= 95% test accuracy."""
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("ember.data.sources.DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.chdir(tmp_path)
    assert main(["--progress", "off"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("dataset: digits (auto: no MNIST or Fashion-MNIST found in")
    assert "--download" in first and "--data-dir" in first and "EMBER_DATA" in first
    history = json.loads((tmp_path / "runs" / "simple_convnet-digits" / "history.json").read_text())
    assert history["args"]["init"] == "he" and history["args"]["epochs"] == 15
    assert history["epochs"][-1]["test_accuracy"] >= 0.95, history["epochs"][-1]
    assert len(history["steps"]) == 15 * 29  # per-step losses for the curve (1438 images, batches of 50)


def test_simple_convnet_learns_digits(tmp_path):
    """The same check on scikit-learn's bundled digits (always available offline)."""
    code = main(["--dataset", "digits", "--epochs", "4", "--init", "he", "--out", str(tmp_path),
                 "--progress", "off", "--plot-filters"])
    assert code == 0
    final = json.loads((tmp_path / "history.json").read_text())["epochs"][-1]
    assert final["test_accuracy"] >= 0.80, final
    for name in ("checkpoint.npz", "history.json", "curves.png", "filters_before.png", "filters_after.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_resume_continues_bit_exactly(tmp_path):
    """3 epochs in one go == 2 epochs, then --resume to 3 (same parameters, bit for bit)."""
    common = ["--dataset", "digits", "--model", "two_layer_net", "--optimizer", "adam", "--progress", "off",
              "--no-plot", "--max-train", "600"]
    assert main(common + ["--epochs", "3", "--out", str(tmp_path / "straight")]) == 0
    assert main(common + ["--epochs", "2", "--out", str(tmp_path / "split")]) == 0
    assert main(common + ["--epochs", "3", "--out", str(tmp_path / "split"), "--resume"]) == 0
    a = em.load(tmp_path / "straight" / "checkpoint.npz")["model"]
    b = em.load(tmp_path / "split" / "checkpoint.npz")["model"]
    assert list(a) == list(b)
    for k in a:
        numpy.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, capsys):
    common = ["--dataset", "digits", "--model", "two_layer_net", "--progress", "off", "--no-plot",
              "--out", str(tmp_path), "--optimizer", "sgd"]
    assert main(common + ["--epochs", "1", "--lr", "0.1"]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    code = main(common + ["--epochs", "3", "--lr", "1e38", "--resume"])
    err = capsys.readouterr().err
    assert code == 3
    assert "loss became" in err and "epoch 2, step" in err and "last good checkpoint" in err
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_unknown_model_lists_valid_names():
    proc = subprocess.run([sys.executable, "-m", "ember.train", "--model", "resnet"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "simple_convnet" in proc.stderr and "two_layer_net" in proc.stderr


def test_unknown_optimizer_lists_valid_names():
    proc = subprocess.run([sys.executable, "-m", "ember.train", "--optimizer", "lbfgs"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "adam" in proc.stderr and "sgd" in proc.stderr


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EMBER_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--progress", "off"])
    assert code == 2
    assert "train-images" in capsys.readouterr().err


def test_progress_bar_stays_off_when_not_on_a_terminal(tmp_path, capsys):
    """--progress auto (the default) draws no bar into captured, non-terminal output."""
    assert main(["--dataset", "digits", "--model", "two_layer_net", "--epochs", "1", "--max-train", "200",
                 "--no-plot", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "batch/s" not in captured.err and "it/s" not in captured.err
