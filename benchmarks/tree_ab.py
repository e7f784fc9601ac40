"""A/B of training steps across source trees: each run is a fresh process, trees alternate.

Usage: ``python -m benchmarks.tree_ab MODEL ROUNDS TREE[,TREE...] [SECONDS]`` with
MODEL one of ``mlp`` (784-512-512-10, batch 128, SGD), ``tln`` (TwoLayerNet
784-50-10, batch 100, SGD), ``scn`` or ``dcn`` (SimpleConvNet or DeepConvNet,
batch 100, Adam); a TREE is a directory put first on ``PYTHONPATH`` (e.g. ``/work/main`` and ``.``) or
``torch`` for PyTorch's equivalent model.  Each run warms up, then keeps the best
of three medians of SECONDS-long runs of steps; the tree order rotates every
round.  Prints each run and the min and median over rounds per tree.  Prints
only; nothing is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

CHILD = r'''
import json, sys, time
import numpy as np

model_name, secs, tree = sys.argv[1], float(sys.argv[2]), sys.argv[3]
batch = 128 if model_name == "mlp" else 100
shape = (1, 28, 28) if model_name in ("scn", "dcn") else (784,)
rng = np.random.default_rng(0)
x_np = rng.normal(size=(batch, *shape)).astype(np.float32)
t_np = rng.integers(0, 10, batch)
if tree == "torch":
    import torch
    from torch import nn
    torch.manual_seed(0)
    F = nn.functional
    if model_name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    elif model_name == "tln":
        model = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))
    elif model_name == "scn":
        model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                              nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10))
    else:  # the book's DeepConvNet
        def block(cin, cout, pad2):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=pad2), nn.ReLU(),
                    nn.MaxPool2d(2, 2)]
        model = nn.Sequential(*block(1, 16, 1), *block(16, 32, 2), *block(32, 64, 1), nn.Flatten(),
                              nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5))
    optim, x, t = torch.optim, torch.from_numpy(x_np), torch.from_numpy(t_np)
else:
    import ember as em
    import ember.nn.functional as F
    em.manual_seed(0)
    if model_name == "mlp":
        model = em.models.MultiLayerNet((784,), [512, 512], 10)
    elif model_name == "tln":
        model = em.models.TwoLayerNet((784,), 50, 10, activation="relu")
    elif model_name == "scn":
        model = em.models.SimpleConvNet((1, 28, 28), output_size=10)
    else:
        model = em.models.DeepConvNet((1, 28, 28), output_size=10)
    optim, x, t = em.optim, em.tensor(x_np), em.tensor(t_np)
if model_name in ("scn", "dcn"):
    opt = optim.Adam(model.parameters(), lr=1e-3)
else:
    opt = optim.SGD(model.parameters(), lr=0.01)


def step():
    opt.zero_grad()
    F.cross_entropy(model(x), t).backward()
    opt.step()


for _ in range(5):
    step()
medians = []
for _ in range(3):
    times, end = [], time.perf_counter() + secs
    while time.perf_counter() < end:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    medians.append(float(np.median(times)) * 1e3)
print(json.dumps([min(medians), None]))
'''


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[0] not in ("mlp", "tln", "scn", "dcn"):
        print("error: usage: python -m benchmarks.tree_ab {mlp,tln,scn,dcn} ROUNDS TREE[,TREE...] [SECONDS]",
              file=sys.stderr)
        return 2
    model, rounds, trees = args[0], int(args[1]), args[2].split(",")
    secs = float(args[3]) if len(args) > 3 else 0.3
    res: dict = {t: [] for t in trees}
    for r in range(rounds):
        for tree in trees[r % len(trees):] + trees[: r % len(trees)]:
            env = dict(os.environ)
            if tree != "torch":
                env["PYTHONPATH"] = os.path.abspath(tree)
            out = subprocess.run([sys.executable, "-c", CHILD, model, str(secs), tree], capture_output=True,
                                 text=True, env=env, cwd="/")
            if out.returncode:
                print(f"error: {tree}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}",
                      file=sys.stderr)
                return 1
            res[tree].append(json.loads(out.stdout.strip().splitlines()[-1])[0])
        print(r, {t: round(v[-1], 3) for t, v in res.items()}, "load", os.getloadavg()[0], flush=True)
    for t, v in res.items():
        print(f"{model} {t}: min {min(v):.3f} median {np.median(v):.3f} ms  n={len(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
