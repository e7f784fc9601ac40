"""``python -m ember.train --dtype float16`` (AMP) and ``--eval-dtype`` on scikit-learn's digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ember as em
from ember.train import main

COMMON = ["--dataset", "digits", "--init", "he", "--progress", "off", "--no-plot"]


def test_amp_training_learns_digits_and_checkpoints_the_scaler(tmp_path):
    code = main(COMMON + ["--dtype", "float16", "--epochs", "3", "--out", str(tmp_path)])
    assert code == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["args"]["dtype"] == "float16"
    assert history["epochs"][-1]["test_accuracy"] >= 0.80, history["epochs"][-1]
    state = em.load(tmp_path / "checkpoint.npz")
    assert set(state["scaler"]) == {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    assert state["scaler"]["scale"] > 0
    # float32 master weights: the checkpointed model is float32 although it trained in float16.
    assert all(v.dtype == em.float32 for v in state["model"].values())


def test_amp_resume_restores_the_scaler(tmp_path, monkeypatch):
    args = COMMON + ["--dtype", "float16", "--model", "two_layer_net", "--max-train", "300", "--out", str(tmp_path)]
    assert main(args + ["--epochs", "1"]) == 0
    saved = em.load(tmp_path / "checkpoint.npz")["scaler"]
    saved["scale"] = 512.0  # a value a fresh scaler would not have
    seen = []
    real = em.amp.GradScaler.load_state_dict

    def spy(self, state):
        seen.append(dict(state))
        real(self, state)

    monkeypatch.setattr(em.amp.GradScaler, "load_state_dict", spy)
    ckpt = em.load(tmp_path / "checkpoint.npz")
    ckpt["scaler"] = saved
    em.save(ckpt, tmp_path / "checkpoint.npz")
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    assert seen and seen[0]["scale"] == 512.0


@pytest.mark.parametrize("eval_dtype", ["float16", "float64"])
def test_eval_dtype_evaluates_a_converted_copy(tmp_path, eval_dtype):
    """--eval-dtype: accuracy close to the float32 run's, and the trained weights stay float32."""
    base = COMMON + ["--model", "two_layer_net", "--epochs", "2", "--seed", "3"]
    assert main(base + ["--out", str(tmp_path / "f32")]) == 0
    assert main(base + ["--out", str(tmp_path / "other"), "--eval-dtype", eval_dtype]) == 0
    ref = json.loads((tmp_path / "f32" / "history.json").read_text())["epochs"][-1]
    got = json.loads((tmp_path / "other" / "history.json").read_text())["epochs"][-1]
    assert got["train_loss"] == ref["train_loss"]  # training itself is unchanged
    assert abs(got["test_accuracy"] - ref["test_accuracy"]) <= 0.01
    assert got["test_loss"] != ref["test_loss"] or eval_dtype == "float64"
    model = em.load(tmp_path / "other" / "checkpoint.npz")["model"]
    assert all(v.dtype == em.float32 for v in model.values())


def test_bad_dtype_is_rejected(capsys):
    assert main(COMMON + ["--dtype", "bfloat16"]) == 2
    assert "--dtype" in capsys.readouterr().err


def test_evaluate_in_precision_matches_manual_half_model():
    from ember.training.datasets import load_data
    from ember.training.loop import evaluate, evaluate_in_precision

    data = load_data("digits", max_test=200)
    model = em.models.TwoLayerNet(input_size=data.input_dim, output_size=10, hidden_size=20)
    got = evaluate_in_precision(model, data.test, eval_dtype="float16")
    manual = evaluate(em.amp.converted_copy(model, em.float16), data.test, dtype=em.float16)
    assert got == manual
    assert all(p.dtype == em.float32 for p in model.parameters())
    x, _ = data.test.arrays()
    with em.no_grad():
        np.testing.assert_allclose(
            model.half()(em.tensor(x[:5], dtype=em.float16)).numpy(),
            em.amp.converted_copy(model.float(), em.float16)(em.tensor(x[:5], dtype=em.float16)).numpy())
