"""Joining many arrays inside a CUDA graph capture, on the CPU through the fake ``cupy``.

CuPy joins more than eight small arrays in one kernel that reads a pointer table
uploaded from the host, which a capture refuses (the fake does the same). Ember's
joins (``cat``, ``stack``, ``split``'s backward, ``GradScaler``'s inf check,
``clip_grad_norm_``) copy array by array while capturing, so a model with many
parameters captures as a small one does. DeepConvNet's AMP step was refused on an
H200 for this reason (docs/engineering/gpu-h200-2026-12-04-evening.md).
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
import fake_cuda_graph as fcg
from ember.backends.arrays import join_by_copies, stack_by_copies
from test_cuda_graphs_fake_cpu import _batches, _model, _train_amp, graphs  # noqa: F401 - graphs: a fixture
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture graphs uses


def _capture(fn):
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        out = fn()
    return g, out


def test_the_fake_refuses_cupys_pointer_table_join_as_cupy_does(graphs):
    import cupy

    small = [cupy.ones(3, dtype=numpy.float32) for _ in range(9)]
    for join in (cupy.stack, cupy.concatenate):
        with pytest.raises(em.autograd.capture.CaptureError, match="host->device"):
            _capture(lambda: join(small))
        _capture(lambda: join(small[:8]))  # eight arrays: one copy each, as CuPy does
    _capture(lambda: cupy.concatenate(small[:8] + [cupy.ones(3, dtype=numpy.float64)]))  # mixed dtypes: copies


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_joins_by_copies_equal_numpys(axis):
    rng = numpy.random.default_rng(0)
    parts = [rng.normal(size=(2, 3)).astype(numpy.float32) for _ in range(10)]
    mixed = parts[:9] + [rng.integers(0, 5, (2, 3))]
    numpy.testing.assert_array_equal(join_by_copies(numpy, parts, axis), numpy.concatenate(parts, axis))
    numpy.testing.assert_array_equal(stack_by_copies(numpy, parts, axis), numpy.stack(parts, axis))
    joined = join_by_copies(numpy, mixed, axis)
    assert joined.dtype == numpy.concatenate(mixed, axis).dtype
    numpy.testing.assert_array_equal(joined, numpy.concatenate(mixed, axis))


def test_joins_by_copies_refuse_mismatched_shapes_with_the_shapes():
    a, b = numpy.zeros((2, 3)), numpy.zeros((2, 1))
    with pytest.raises(ValueError, match=r"concatenate: .*\(2, 3\), \(2, 1\)"):
        join_by_copies(numpy, [a, b], 0)  # along 0 the widths 3 and 1 would broadcast silently
    with pytest.raises(ValueError, match=r"stack: expected arrays of one shape"):
        stack_by_copies(numpy, [a, b], 0)
    with pytest.raises(ValueError, match="out of range"):
        join_by_copies(numpy, [a, a], 2)
    with pytest.raises(ValueError, match="at least one"):
        stack_by_copies(numpy, [], 0)


def test_cat_stack_and_split_of_many_tensors_replay_like_eager(graphs):
    rng = numpy.random.default_rng(1)
    x = em.tensor(rng.normal(size=(9, 4)).astype(numpy.float32), device="cuda", requires_grad=True)
    w = em.tensor(rng.normal(size=(4,)).astype(numpy.float32), device="cuda")

    def step():
        rows = [x[i] * w for i in range(9)]
        pieces = em.split(em.cat(rows) * 2.0, 4)  # nine pieces: split's backward joins nine gradients
        total = em.stack(rows).sum() + sum((p * p).sum() for p in pieces)
        total.backward()
        return total

    eager = step()
    eager_value, eager_grad = eager.item(), x.grad.numpy().copy()
    x.grad = None
    g, out = _capture(step)
    g.replay()
    assert out.item() == pytest.approx(eager_value, rel=1e-6)
    numpy.testing.assert_allclose(x.grad.numpy(), eager_grad, rtol=1e-6)


def test_clip_grad_norm_over_many_parameters_replays_like_eager(graphs):
    model, shape = _model("DeepConvNet")
    model = model.to("cuda")
    assert len(list(model.parameters())) > 8
    (xb, tb), = _batches(shape, 1)
    x, t = em.tensor(xb, device="cuda"), em.tensor(tb, device="cuda")

    def step(norm_type):
        model.zero_grad()
        em.nn.functional.cross_entropy(model(x), t).backward()
        return em.nn.utils.clip_grad_norm_(model.parameters(), 1e-3, norm_type=norm_type)

    model.eval()  # no dropout: eager and replayed steps see the same network
    for norm_type in (2.0, float("inf")):
        eager = step(norm_type).item()
        eager_grads = [p.grad.numpy().copy() for p in model.parameters()]
        g, total = _capture(lambda: step(norm_type))
        g.replay()
        assert total.item() == eager and eager > 1e-3  # the norm, and the clipping really scaled
        for p, want in zip(model.parameters(), eager_grads):
            numpy.testing.assert_array_equal(p.grad.numpy(), want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflowing steps compute inf/nan, eager and replayed
@pytest.mark.parametrize("init_scale", [2.0**8, 2.0**60])
def test_amp_grad_scaler_on_a_model_of_many_parameters_replays_like_eager(graphs, init_scale, monkeypatch):
    from ember.backends import device_gemm

    monkeypatch.setattr(device_gemm, "ALWAYS", True)  # eager GEMMs on ember's handle too: float16 rounds alike
    batches = _batches(_model("DeepConvNet")[1], 5)
    eager = _train_amp("adam", False, batches, init_scale, name="DeepConvNet")
    replayed = _train_amp("adam", True, batches, init_scale, name="DeepConvNet")
    assert len(replayed[1]) > 8
    assert replayed[0] == eager[0]  # losses and the scale after every step
    for a, b in zip(replayed[1], eager[1]):
        numpy.testing.assert_array_equal(a, b)
    if init_scale == 2.0**8:  # no skipped step: the host's count matches (ember.optim.captured says why only then)
        assert replayed[2] == eager[2]
