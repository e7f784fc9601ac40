"""PyTorch parity on seeded random programs: 30 programs of 6-10 core ops each.

``make_program`` draws leaves and instructions from shapes alone (it tracks
each result's shape), so every program is valid; both frameworks interpret it
and every intermediate value and every leaf gradient must agree.
"""

from __future__ import annotations

import numpy
import pytest

torch = pytest.importorskip("torch")

from parity_ops import EM, TO, assert_close  # noqa: E402  (needs torch)

UNARY = ["tanh", "sigmoid", "relu", "abs", "neg", "exp", "log_pos", "sqrt_pos", "pow_int", "pow_frac", "clip"]
BINARY = ["add", "sub", "mul", "div_pos", "pow_tensor", "where"]
OTHER = ["matmul", "reduce", "reshape", "permute", "swap", "getitem", "cat", "stack"]


def apply_instruction(L, env: list, ins: tuple):
    op, args, p = ins
    x = env[args[0]]
    y = env[args[1]] if len(args) > 1 else None
    if op == "tanh":
        return x.tanh()
    if op == "sigmoid":
        return L.sigmoid(x)
    if op == "relu":
        return L.relu(x)
    if op == "abs":
        return x.abs()
    if op == "neg":
        return -x
    if op == "exp":
        return (x * 0.3).exp()
    if op == "log_pos":
        return (x * x + 0.5).log()
    if op == "sqrt_pos":
        return (x * x + 0.5).sqrt()
    if op == "pow_int":
        return x ** p["n"]
    if op == "pow_frac":
        return (x * x + 0.5) ** 0.75
    if op == "clip":
        return L.clip(x, -0.6, 0.8)
    if op == "add":
        return x + (y if y is not None else p["s"])
    if op == "sub":
        return x - y if y is not None else p["s"] - x
    if op == "mul":
        return x * y
    if op == "div_pos":
        return x / (y * y + 0.5)
    if op == "pow_tensor":
        return (x * x + 0.5) ** y.tanh()
    if op == "where":
        return L.where(x > 0, x, y)
    if op == "matmul":
        return x @ L.const(p["w"]) if p["const"] else x @ y
    if op == "reduce":
        return getattr(L, p["kind"])(x, p["axis"], p["keepdims"])
    if op == "reshape":
        return L.reshape(x, p["shape"])
    if op == "permute":
        return L.permute(x, p["perm"])
    if op == "swap":
        return L.swap(x, *p["axes"])
    if op == "getitem":
        return x[L.index(p["index"])]
    if op == "cat":
        return L.cat([x, y.tanh()], p["axis"])
    if op == "stack":
        return L.stack([x, y * 2.0], p["axis"])
    raise AssertionError(op)


def _broadcastable(sa: tuple, sb: tuple) -> bool:
    try:
        return numpy.broadcast_shapes(sa, sb) == sa
    except ValueError:
        return False


def make_program(rng: numpy.random.Generator, n_ops: int) -> tuple[list, list]:
    """Random leaves and ``n_ops`` valid instructions, drawn using shapes only."""
    leaf_shapes = [(3, 4), (4,), (2, 3, 4), (1, 4), (3, 1)]
    picks = rng.choice(len(leaf_shapes), size=3, replace=False)
    arrays = [rng.normal(size=leaf_shapes[i]) for i in picks]
    shapes = [a.shape for a in arrays]
    program = []
    while len(program) < n_ops:
        i = int(rng.integers(len(shapes)))
        sx = shapes[i]
        op = rng.choice(UNARY + BINARY + OTHER)
        args, p, out = (i,), {}, sx
        if op == "pow_int":
            p["n"] = int(rng.choice([2, 3]))
        elif op in BINARY:
            partners = [j for j, s in enumerate(shapes) if _broadcastable(sx, s)]
            if op in ("add", "sub") and rng.random() < 0.3:
                p["s"] = float(rng.normal())
            else:
                args = (i, int(rng.choice(partners)))
        elif op == "matmul":
            if not sx or (len(sx) > 3):
                continue
            k = sx[-1]
            partners = [j for j, s in enumerate(shapes) if len(s) in (1, 2) and s[0] == k]
            if partners and rng.random() < 0.5:
                j = int(rng.choice(partners))
                args = (i, j)
                out = sx[:-1] + shapes[j][1:]
            else:
                m = int(rng.integers(1, 4))
                p = {"const": True, "w": rng.normal(size=(k, m))}
                out = sx[:-1] + (m,)
            p.setdefault("const", False)
        elif op == "reduce":
            if not sx:
                continue
            kind = str(rng.choice(["sum", "mean", "amax", "amin", "var"]))
            nd = len(sx)
            axes = tuple(sorted(int(a) for a in rng.choice(nd, size=int(rng.integers(1, nd + 1)), replace=False)))
            axis = None if rng.random() < 0.2 else (axes[0] - nd if len(axes) == 1 else axes)
            count = int(numpy.prod([sx[a] for a in (range(nd) if axis is None else axes)]))
            if kind == "var" and count < 2:
                continue
            keepdims = bool(rng.random() < 0.5)
            p = {"kind": kind, "axis": axis, "keepdims": keepdims}
            red = set(range(nd)) if axis is None else set(axes)
            out = tuple(1 if d in red else s for d, s in enumerate(sx)) if keepdims else \
                tuple(s for d, s in enumerate(sx) if d not in red)
        elif op == "reshape":
            n = int(numpy.prod(sx))
            options = [(n,), (1, n), (-1, 1)] + ([(2, -1)] if n % 2 == 0 else [])
            shape = options[int(rng.integers(len(options)))]
            p["shape"] = shape
            out = tuple(n // int(numpy.prod([s for s in shape if s != -1])) if s == -1 else s for s in shape)
        elif op == "permute":
            if len(sx) < 2:
                continue
            perm = tuple(int(a) for a in rng.permutation(len(sx)))
            p["perm"] = perm
            out = tuple(sx[a] for a in perm)
        elif op == "swap":
            if len(sx) < 3:
                continue
            a, b = (int(v) for v in rng.choice(len(sx), size=2, replace=False))
            p["axes"] = (a, b)
            o = list(sx)
            o[a], o[b] = o[b], o[a]
            out = tuple(o)
        elif op == "getitem":
            if not sx:
                continue
            if rng.random() < 0.5:  # basic slices (torch has no negative steps)
                if sx[0] < 2:
                    continue
                p["index"] = (slice(1, None),) + (slice(None, None, 2),) * (len(sx) > 1)
                out = (sx[0] - 1,) + (((sx[1] + 1) // 2,) if len(sx) > 1 else ()) + sx[2:]
            else:  # an integer array, repeats allowed
                idx = rng.integers(0, sx[0], size=int(rng.integers(1, 5)))
                p["index"] = idx
                out = (len(idx),) + sx[1:]
        elif op in ("cat", "stack"):
            if not sx:
                continue
            axis = int(rng.integers(len(sx)))
            if op == "cat":
                partners = [j for j, s in enumerate(shapes)
                            if len(s) == len(sx) and s[:axis] + s[axis + 1:] == sx[:axis] + sx[axis + 1:]]
                j = int(rng.choice(partners))
                out = sx[:axis] + (sx[axis] + shapes[j][axis],) + sx[axis + 1:]
            else:
                partners = [j for j, s in enumerate(shapes) if s == sx]
                j = int(rng.choice(partners))
                out = sx[:axis] + (2,) + sx[axis:]
            args, p = (i, j), {"axis": axis}
        program.append((str(op), args, p))
        shapes.append(out)
    return arrays, program


def run_program(L, arrays: list, program: list) -> list:
    env = [L.leaf(a) for a in arrays]
    for ins in program:
        env.append(apply_instruction(L, env, ins))
    return env


@pytest.mark.parametrize("seed", range(30))
def test_random_program(seed):
    rng = numpy.random.default_rng(1000 + seed)
    arrays, program = make_program(rng, int(rng.integers(6, 11)))
    weights = [numpy.random.default_rng(seed).normal(size=s) for s in
               [numpy.shape(v) for v in run_program(EM, arrays, program)[len(arrays):]]]
    got = {}
    for L in (EM, TO):
        env = run_program(L, arrays, program)
        outs = env[len(arrays):]
        loss = None
        for o, w in zip(outs, weights):
            term = (o * L.const(w)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        got[L] = ([L.to_numpy(o) for o in outs], [L.to_numpy(t.grad) if t.grad is not None else None
                                                  for t in env[:len(arrays)]])
    for k, (a, b) in enumerate(zip(got[EM][0], got[TO][0])):
        assert_close(a, b, f"seed {seed}: value of instruction {k} {program[k][0]}")
    for k, (a, b) in enumerate(zip(got[EM][1], got[TO][1])):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, f"seed {seed}: gradient of leaf {k}")
