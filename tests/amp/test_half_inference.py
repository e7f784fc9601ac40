"""Module.half() inference: a trained SimpleConvNet keeps its Fashion-MNIST accuracy within 0.5 points."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.data import DataLoader
from ember.models import SimpleConvNet
from ember.training.datasets import load_data
from ember.training.loop import evaluate, train_epoch


def _train_and_compare(root, max_train, max_test):
    em.manual_seed(0)
    data = load_data("fashion-mnist", str(root), max_train=max_train, max_test=max_test, seed=0)
    model = SimpleConvNet(weight_init_std="he")
    optimizer = em.optim.Adam(model.parameters(), lr=0.001)
    train_epoch(model, DataLoader(data.train, batch_size=100, shuffle=True, seed=0), optimizer, 1)
    f32 = evaluate(model, data.test)
    model.half()
    assert all(p.dtype == em.float16 for p in model.parameters())
    x, _ = data.test.arrays()
    with em.no_grad():
        assert model(em.tensor(x[:2], dtype=em.float16)).dtype == em.float16  # true float16 arithmetic
    f16 = evaluate(model, data.test, dtype=em.float16)
    model.float()
    back = evaluate(model, data.test)
    return f32, f16, back


def test_half_inference_within_half_a_point(fashion_dir):
    """3,000 training images, 1 epoch (He init); 1,000 test images (float16 matmuls are slow in NumPy)."""
    f32, f16, back = _train_and_compare(fashion_dir, 3000, 1000)
    assert f32["accuracy"] >= 0.70, f32  # it did learn, so the comparison means something
    assert abs(f16["accuracy"] - f32["accuracy"]) <= 0.005, (f32, f16)
    assert np.isclose(f16["loss"], f32["loss"], rtol=2e-2), (f32, f16)
    # half() then float() keeps the float16-rounded weights: still within the same margin
    assert abs(back["accuracy"] - f32["accuracy"]) <= 0.005, (f32, back)


@pytest.mark.slow
def test_half_inference_within_half_a_point_full_data(fashion_dir):
    """The acceptance check at full size: 60,000 training images, the full 10,000-image test set."""
    f32, f16, _ = _train_and_compare(fashion_dir, None, None)
    assert f32["accuracy"] >= 0.85, f32
    assert abs(f16["accuracy"] - f32["accuracy"]) <= 0.005, (f32, f16)
