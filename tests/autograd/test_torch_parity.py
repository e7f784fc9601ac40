"""PyTorch parity: the same float64 graphs in ember and torch give the same values and gradients.

Each case is written once against an adapter (``parity_ops.EM`` / ``TO``), so
both frameworks run exactly the same graph; random programs are in
test_torch_random_programs.py.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em

torch = pytest.importorskip("torch")

from parity_ops import EM, TO, assert_close  # noqa: E402  (needs torch)


def run_both(fn, arrays):
    """Run ``fn(L, *leaves)`` on ember and torch; compare outputs, then gradients of a weighted sum."""
    results = {}
    for L in (EM, TO):
        leaves = [L.leaf(a) for a in arrays]
        out = fn(L, *leaves)
        outs = out if isinstance(out, (tuple, list)) else [out]
        rng = numpy.random.default_rng(99)
        loss = None
        for o in outs:
            term = (o * L.const(rng.normal(size=tuple(o.shape)))).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        results[L] = ([L.to_numpy(o) for o in outs],
                      [None if t.grad is None else L.to_numpy(t.grad) for t in leaves])
    (ye, ge), (yt, gt) = results[EM], results[TO]
    for k, (a, b) in enumerate(zip(ye, yt)):
        assert_close(a, b, f"output {k}")
    for k, (a, b) in enumerate(zip(ge, gt)):
        assert (a is None) == (b is None), f"grad {k}: ember {a is None}, torch {b is None}"
        if a is not None:
            assert_close(a, b, f"grad of leaf {k}")


R = numpy.random.default_rng(2024)
A34, B34, C4, D234, E43 = (R.normal(size=s) for s in [(3, 4), (3, 4), (4,), (2, 3, 4), (4, 3)])
POS34 = R.uniform(0.5, 2.0, size=(3, 4))

CASES = {
    "arithmetic broadcast": (lambda L, a, b, c: (a + c) * b - a / (c * c + 1.0) - (-b), [A34, B34, C4]),
    "scalars both sides": (lambda L, a: 2.0 - a * 3.0 + 1.5 / (a * a + 1.0) + a / 4.0, [A34]),
    "pow scalar exponents": (lambda L, p: p ** 2 + p ** 0.5 + p ** -1.5 + 2.0 ** p, [POS34]),
    "pow tensor exponent": (lambda L, p, b: p ** b, [POS34, B34]),
    "unary chain": (lambda L, a: (a.exp() * 0.1).log() + (a * a + 1.0).sqrt() + a.tanh() + a.abs(), [A34]),
    "activations": (lambda L, a, b: L.sigmoid(a) * L.relu(b) + L.clip(a, -0.5, 0.7), [A34, B34]),
    "matmul 2-d": (lambda L, a, e: a @ e, [A34, E43]),
    "matmul batched broadcast": (lambda L, d, e: d @ e, [D234, E43]),
    "matmul batched both": (lambda L, d, f: d @ f, [D234, R.normal(size=(2, 4, 5))]),
    "matmul vector right": (lambda L, a, c: a @ c, [A34, C4]),
    "matmul vector left": (lambda L, c, e: c @ e, [C4, E43]),
    "matmul vector vector": (lambda L, c, v: c @ v, [C4, R.normal(size=4)]),
    "matmul batched vector": (lambda L, d, c: d @ c, [D234, C4]),
    "sum axes": (lambda L, d: [L.sum(d, None, False), L.sum(d, 1, False), L.sum(d, (0, 2), True),
                               L.sum(d, -1, True)], [D234]),
    "mean axes": (lambda L, d: [L.mean(d, None, True), L.mean(d, (0, -1), False), L.mean(d, 1, True)], [D234]),
    "amax amin": (lambda L, d: [L.amax(d, 1, False), L.amin(d, (0, 2), True), L.amax(d, None, False)], [D234]),
    "amax with ties": (lambda L, a: L.amax(L.clip(a, -0.3, 0.3), 1, False), [A34]),
    "var": (lambda L, d: [L.var(d, None, False), L.var(d, 2, True), L.var(d, (0, 1), False)], [D234]),
    "reshape": (lambda L, d: L.reshape(d, (4, -1)) * L.reshape(d, (6, 4)).T, [D234]),
    "permute": (lambda L, d: L.permute(d, (2, 0, 1)).tanh() * 2.0, [D234]),
    "swap axes off 2-d": (lambda L, d: L.swap(d, 0, 2).exp(), [D234]),
    "2-d T": (lambda L, a, e: L.T(a) * e, [A34, E43]),
    "squeeze unsqueeze": (lambda L, c: L.squeeze(L.unsqueeze(c, 0), 0) * L.unsqueeze(c, 1), [C4]),
    "getitem slices": (lambda L, d: d[1, ::2, 1:] * 2.0 + d[..., -1:].sum(), [D234]),
    "getitem int array repeats": (lambda L, a: a[L.index(numpy.array([0, 2, 2, 1]))].tanh(), [A34]),
    "getitem paired arrays": (lambda L, a: a[L.index((numpy.array([0, 1, 1]), numpy.array([3, 3, 0])))], [A34]),
    "getitem bool mask": (lambda L, a, b: a[b > 0] * 3.0, [A34, B34]),
    "cat": (lambda L, a, e: L.cat([a, L.T(e), a * 2.0], 0), [A34, E43]),
    "cat same tensor twice": (lambda L, a: L.cat([a, a], -1).exp(), [A34]),
    "stack": (lambda L, a, b: L.stack([a, b, a * b], 1), [A34, B34]),
    "where": (lambda L, a, b, c: L.where(a > b, a * 2.0, c), [A34, B34, C4]),
    "where scalar": (lambda L, a: L.where(a < 0.1, a, 0.25), [A34]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_case(name):
    fn, arrays = CASES[name]
    run_both(fn, arrays)


def test_mlp_training_steps_match():
    # Three SGD steps of a 2-layer MLP: parameters stay equal to torch's.
    rng = numpy.random.default_rng(5)
    x, t = rng.normal(size=(8, 5)), rng.normal(size=(8, 2))
    init = [rng.normal(size=(5, 6)) * 0.5, numpy.zeros(6), rng.normal(size=(6, 2)) * 0.5, numpy.zeros(2)]
    final = {}
    for L, no_grad in ((EM, em.no_grad), (TO, torch.no_grad)):
        params = [L.leaf(p.copy()) for p in init]
        xc, tc = L.const(x), L.const(t)
        for _ in range(3):
            w1, b1, w2, b2 = params
            d = (xc @ w1 + b1).tanh() @ w2 + b2 - tc
            loss = (d * d).mean()
            loss.backward()
            with no_grad():
                for p in params:
                    p.sub_(p.grad * 0.1)  # in place on the leaf, allowed under no_grad
                    p.grad = None
        final[L] = [L.to_numpy(p) for p in params]
    for k, (a, b) in enumerate(zip(final[EM], final[TO])):
        assert_close(a, b, f"param {k}")
