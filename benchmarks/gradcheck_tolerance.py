"""How far float64 central differences land from the engine's gradients on every registered op.

Runs the registry's samples (the cases ``tests/autograd/test_gradcheck_registry.py`` checks),
first and second order, and prints the worst absolute error and the worst relative error
(over Jacobian entries whose numeric value exceeds 1e-3) so gradcheck's default tolerances
can be set from data.  Usage: ``python -m benchmarks.gradcheck_tolerance``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ember as em  # noqa: E402
import ember.autograd.gradcheck  # noqa: E402

gc = sys.modules["ember.autograd.gradcheck"]
from ember.autograd.registry import OPS  # noqa: E402


def _cases():
    root = Path(__file__).resolve().parents[1] / "tests" / "autograd"
    sys.path.insert(0, str(root))
    import test_gradcheck_registry as reg  # the registry tests' own case builder

    for name, spec in sorted(OPS.items()):
        samples = spec.samples(numpy.random.default_rng(1234)) if spec.samples else []
        for k in range(len(samples)):
            yield name, k, reg._build(name, k)


def _errors(fn, tensors, eps=1e-6):
    inputs = list(tensors)
    wrt = [i for i, t in enumerate(inputs) if t.requires_grad]
    analytic = gc._analytic_jacobians(fn, inputs, wrt)
    numeric = gc._numeric_jacobians(fn, inputs, wrt, eps)
    worst_abs, worst_rel = 0.0, 0.0
    for row_a, row_n in zip(analytic, numeric):
        for a, n in zip(row_a, row_n):
            if not a.size:
                continue
            diff = numpy.abs(a - n)
            worst_abs = max(worst_abs, float(diff.max()))
            big = numpy.abs(n) > 1e-3
            if big.any():
                worst_rel = max(worst_rel, float((diff[big] / numpy.abs(n[big])).max()))
    return worst_abs, worst_rel


def main() -> None:
    rows = []
    for name, k, (spec, fn, tensors) in _cases():
        rows.append(("first", name, k) + _errors(fn, tensors))
        if spec.second_order:
            seed_rng = numpy.random.default_rng(0)
            outs = gc._outputs(fn, tensors)
            weights = [em.tensor(seed_rng.normal(size=tuple(o.shape)), dtype=o.dtype) for o in outs]

            def first(*args, fn=fn, weights=weights):
                with em.enable_grad():
                    ys = [o for o in gc._outputs(fn, list(args)) if o.requires_grad]
                    gs = em.autograd.grad(ys, [a for a in args if a.requires_grad], weights[: len(ys)], create_graph=True, allow_unused=True)
                return tuple(g for g in gs if g is not None)

            rows.append(("second", name, k) + _errors(first, tensors))
    for order in ("first", "second"):
        sel = [r for r in rows if r[0] == order]
        by_abs = max(sel, key=lambda r: r[3])
        by_rel = max(sel, key=lambda r: r[4])
        print(f"{order} order, {len(sel)} cases: worst abs {by_abs[3]:.2e} ({by_abs[1]}#{by_abs[2]}), "
              f"worst rel {by_rel[4]:.2e} ({by_rel[1]}#{by_rel[2]})")
        top = sorted(sel, key=lambda r: -r[4])[:5]
        print("  top rel: " + ", ".join(f"{r[1]}#{r[2]} {r[4]:.1e}" for r in top))


if __name__ == "__main__":
    main()
