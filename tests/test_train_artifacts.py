"""The training curves people read: integer epoch ticks, a per-step loss curve, a title that says what ran."""

from __future__ import annotations

import numpy
import pytest

from ember.training import artifacts


@pytest.fixture
def captured_figure(monkeypatch):
    figures = []
    monkeypatch.setattr(artifacts, "_figure_to", lambda path, fig: figures.append(fig))
    return figures


def _epochs(n: int) -> list:
    return [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.1 / e, "train_accuracy": 0.8 + 0.01 * e,
             "test_accuracy": 0.78 + 0.01 * e} for e in range(1, n + 1)]


def test_one_epoch_shows_a_per_step_curve_on_integer_ticks(tmp_path, captured_figure):
    steps = [[s / 30, 2.0 - s / 30] for s in range(1, 31)]
    title = "simple_convnet on digits, adam lr 0.003: test accuracy 0.7900"
    artifacts.plot_history(tmp_path / "curves.png", _epochs(1), title, steps=steps, steps_per_epoch=30)
    (fig,) = captured_figure
    ax_loss, ax_acc = fig.axes
    assert fig._suptitle.get_text() == title
    curves = [line for line in ax_loss.get_lines() if len(line.get_xdata()) == 30]
    assert len(curves) == 2  # raw per-step losses and their moving average
    for ax in (ax_loss, ax_acc):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_many_epochs_have_integer_ticks_only(tmp_path, captured_figure):
    artifacts.plot_history(tmp_path / "curves.png", _epochs(7), "t")
    for ax in captured_figure[0].axes:
        assert all(float(t).is_integer() for t in ax.get_xticks())


def test_smooth_is_a_trailing_mean():
    numpy.testing.assert_allclose(artifacts.smooth([1, 3, 5, 7], 2), [1, 2, 4, 6])
    numpy.testing.assert_allclose(artifacts.smooth([4, 2], 1), [4, 2])
    assert artifacts.smooth([], 3).size == 0


def test_real_png_is_written_with_mode_0644(tmp_path):
    path = tmp_path / "curves.png"
    artifacts.plot_history(path, _epochs(2), "t", steps=[[0.5, 1.0], [1.0, 0.9], [1.5, 0.8], [2.0, 0.7]],
                           steps_per_epoch=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert oct(path.stat().st_mode & 0o777) in (oct(0o644), oct(0o664), oct(0o666))
