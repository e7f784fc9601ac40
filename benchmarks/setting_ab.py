"""In-process A/B of one module setting over training steps: rounds alternate the values, ratios are paired.

Usage: ``python -m benchmarks.setting_ab MODEL MODULE:NAME VALUE[,VALUE...] [ROUNDS]``, e.g.
``python -m benchmarks.setting_ab mlp ember.backends.numba.pool_flat:MIN_POOL_ELEMENTS 1e12,65536 20``.
MODEL is ``mlp``, ``tln``, ``scn`` or ``dcn`` (as ``benchmarks.tree_ab``: SGD for the first two, Adam for
the conv nets).  Each round runs a block of steps under every value in turn and keeps the block's median;
the report gives each value's median over rounds and its median ratio to the first value's block of the
same round, which cancels most of a shared VM's slow phases.  Prints only; nothing is written.
"""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np

STEPS_PER_BLOCK = {"mlp": 150, "tln": 1000, "scn": 60, "dcn": 10}


def _step(model_name: str):
    """One training step of the model on a fixed random batch (forward, cross-entropy, backward, update)."""
    import ember as em
    import ember.nn.functional as F

    em.manual_seed(0)
    rng = np.random.default_rng(0)
    batch = 128 if model_name == "mlp" else 100
    shape = (1, 28, 28) if model_name in ("scn", "dcn") else (784,)
    x = em.tensor(rng.normal(size=(batch, *shape)).astype(np.float32))
    t = em.tensor(rng.integers(0, 10, batch))
    model = {"mlp": lambda: em.models.MultiLayerNet((784,), [512, 512], 10),
             "tln": lambda: em.models.TwoLayerNet((784,), 50, 10, activation="relu"),
             "scn": lambda: em.models.SimpleConvNet((1, 28, 28), output_size=10),
             "dcn": lambda: em.models.DeepConvNet((1, 28, 28), output_size=10)}[model_name]()
    opt = (em.optim.Adam if model_name in ("scn", "dcn") else em.optim.SGD)(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        opt.step()

    return step


def _parse(kind: type, text: str) -> object:
    """A value of the setting's type from the command line (``1e12`` for ints; ``0``/``1``/``false``/``true``)."""
    if kind is bool:
        if text.lower() not in ("0", "1", "false", "true"):
            raise ValueError(f"expected 0, 1, false or true for a bool setting, got {text!r}")
        return text.lower() in ("1", "true")
    return kind(float(text)) if kind in (int, float) else kind(text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[0] not in STEPS_PER_BLOCK or ":" not in args[1]:
        print("error: usage: python -m benchmarks.setting_ab {mlp,tln,scn,dcn} MODULE:NAME VALUE[,VALUE...] [ROUNDS]",
              file=sys.stderr)
        return 2
    model_name, (module_name, name) = args[0], args[1].split(":", 1)
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        print(f"error: {module_name} has no setting {name!r}", file=sys.stderr)
        return 2
    kind = type(getattr(module, name))
    values = [_parse(kind, v) for v in args[2].split(",")]
    rounds = int(args[3]) if len(args) > 3 else 20
    step = _step(model_name)
    for value in values:  # compile and warm up every variant
        setattr(module, name, value)
        for _ in range(3):
            step()
    blocks: dict = {i: [] for i in range(len(values))}
    for _ in range(rounds):
        for i, value in enumerate(values):
            setattr(module, name, value)
            times = []
            for _ in range(STEPS_PER_BLOCK[model_name]):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            blocks[i].append(float(np.median(times)))
    first = np.array(blocks[0])
    for i, value in enumerate(values):
        own = np.array(blocks[i])
        print(f"{model_name} {name}={value}: median {np.median(own) * 1e3:.3f} ms, "
              f"paired ratio to {values[0]}: {np.median(own / first):.4f}  ({rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
