"""em.summary: layer rows, output shapes and parameter counts."""

from __future__ import annotations

import pytest

import ember as em


def test_simple_convnet_summary():
    model = em.models.SimpleConvNet()
    printed = []
    text = em.summary(model, (1, 28, 28), print_fn=printed.append)
    assert printed == [text]
    rows = [line.split() for line in text.splitlines() if "(" in line and line.startswith(" ") and "Layer" not in line]
    assert [r[0] for r in rows] == ["conv1", "relu1", "pool1", "flatten", "affine1", "relu2", "affine2"]
    assert rows[0][1:] == ["(Conv2d)", "(None,", "30,", "24,", "24)", "780"]
    assert rows[4][-1] == "432,100" and rows[3][2] == "(None," and rows[3][3] == "4320)"
    total = sum(p.numel() for p in model.parameters())
    assert f"Total params: {total:,}" in text and f"Trainable params: {total:,}" in text
    assert model.training and not model.conv1._forward_hooks  # mode and hooks restored


def test_frozen_params_buffers_and_several_inputs():
    class Two(em.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = em.nn.Linear(3, 4)
            self.b = em.nn.Linear(5, 4)
            self.bn = em.nn.BatchNorm1d(4)

        def forward(self, x, y):
            return self.bn(self.a(x) + self.b(y))

    m = Two()
    m.b.requires_grad_(False)
    text = em.summary(m, [(3,), (5,)], print_fn=None)
    assert "Trainable params: 24" in text and "Non-trainable params: 24" in text
    assert "(None, 4)" in text and "Buffers" in text
    with pytest.raises(ValueError, match="positive ints"):
        em.summary(m, (0, 3), print_fn=None)
    with pytest.raises(TypeError, match="Module"):
        em.summary(lambda x: x, (3,))
