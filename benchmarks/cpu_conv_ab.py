"""A/B of two ember source trees on the DeepConvNet CPU workload (and torch for scale).

Each round starts one fresh process per tree (``PYTHONPATH=<tree>``), alternating
the order, and each process reports the median of its timed repeats; the script
prints min and median over rounds.  Workloads: ``step`` (one Adam training step,
batch 100, float32), ``eval`` (forward of 10k images at batch 1000 under
``no_grad``), ``layers`` (forward and forward+backward of each conv layer at
batch 100).  ``torch`` as a tree name measures PyTorch on the same workload
(``torch.set_num_threads(2)``).

``--inprocess --what layers`` alternates, per layer, the slices by im2col and
by per-tap GEMMs (forced on for every layer).  ``--inprocess`` on ``step`` or
``eval`` instead alternates, inside this one process, the Numba backend's
batched conv path and its whole-conv slices (``conv2d_supported`` switched off
and on), the slices with im2col everywhere and with per-tap GEMMs where
``conv_fused`` picks them (``SHIFTED_GEMMS``), on ``step`` or ``eval``.

Usage: ``python -m benchmarks.cpu_conv_ab --trees /work/main,. --rounds 8 --what step``;
``python -m benchmarks.cpu_conv_ab --inprocess --rounds 10 --what step``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# DeepConvNet's conv layers: (name, C, OC, H = W, padding), 3x3 kernels at stride 1.
LAYERS = [("conv1", 1, 16, 28, 1), ("conv2", 16, 16, 28, 1), ("conv3", 16, 32, 14, 1),
          ("conv4", 32, 32, 14, 2), ("conv5", 32, 64, 8, 1), ("conv6", 64, 64, 8, 1)]

CHILD = r"""
import json, sys, time
import numpy as np
what, repeats = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
out = {}
if sys.argv[3] == "torch":
    import torch
    import os; torch.set_num_threads(int(os.environ.get("EMBER_NUM_THREADS", "2")))
    nn, F = torch.nn, torch.nn.functional
    def model():
        specs, layers, c = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)], [], 1
        for i, (f, p) in enumerate(specs):
            layers += [nn.Conv2d(c, f, 3, padding=p), nn.ReLU()]
            c = f
            if i % 2: layers.append(nn.MaxPool2d(2, 2))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(50, 10), nn.Dropout(0.5))
    tensor = lambda a: torch.from_numpy(a)
    no_grad, conv2d = torch.no_grad, F.conv2d
    make_opt = lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)
else:
    import ember as em
    import ember.nn.functional as F
    from ember.models import DeepConvNet as model
    tensor = lambda a: em.tensor(a)
    no_grad, conv2d = em.no_grad, F.conv2d
    make_opt = lambda m: em.optim.Adam(m.parameters(), lr=1e-3)

def timed(fn, warm=2):
    for _ in range(warm): fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))

if what == "step":
    m = model(); opt = make_opt(m)
    x = tensor(rng.normal(size=(100, 1, 28, 28)).astype(np.float32)); t = tensor(rng.integers(0, 10, 100))
    def step():
        opt.zero_grad(); F.cross_entropy(m(x), t).backward(); opt.step()
    out["step b100"] = timed(step)
elif what == "eval":
    m = model(); m.eval()
    xs = [tensor(rng.normal(size=(1000, 1, 28, 28)).astype(np.float32)) for _ in range(10)]
    def ev():
        with no_grad():
            for x in xs: m(x)
    out["eval 10k b1000"] = timed(ev, warm=1)
else:
    shapes = [("conv1", 1, 16, 28, 1), ("conv2", 16, 16, 28, 1), ("conv3", 16, 32, 14, 1),
              ("conv4", 32, 32, 14, 2), ("conv5", 32, 64, 8, 1), ("conv6", 64, 64, 8, 1)]
    for name, c, oc, hw, p in shapes:
        x = tensor(rng.normal(size=(100, c, hw, hw)).astype(np.float32))
        W = tensor(rng.normal(size=(oc, c, 3, 3)).astype(np.float32)); b = tensor(np.zeros(oc, np.float32))
        for v in (x, W, b): v.requires_grad_(name != "conv1" or v is not x)
        def fwd():
            with no_grad(): conv2d(x, W, b, padding=p)
        def fb():
            y = conv2d(x, W, b, padding=p); y.backward(y)
        out[name + " fwd"] = timed(fwd); out[name + " fwd+bwd"] = timed(fb)
print(json.dumps(out))
"""


def run_once(tree: str, what: str, repeats: int) -> dict:
    """One fresh process measuring ``what`` with ``tree`` first on the path (or torch)."""
    env = dict(os.environ)
    if tree != "torch":
        env["PYTHONPATH"] = os.path.abspath(tree)
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(repeats), tree], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def layers_inprocess(rounds: int, repeats: int) -> None:
    """Each DeepConvNet layer's slices by im2col and by per-tap GEMMs (forced on), alternated here (min ms)."""
    import numpy as np

    from ember.backends.numba import conv_fused

    rng = np.random.default_rng(0)
    saved = conv_fused.SHIFTED_GEMMS, conv_fused.MIN_SHIFTED_CHANNELS, conv_fused.MAX_SHIFTED_WIDTH_RATIO
    print(f"ms, batch 100, best of {rounds} rounds of medians of {repeats}; fwd with ReLU, bwd with its mask")
    try:
        for name, c, oc, hw, p in LAYERS:
            x = rng.normal(size=(100, c, hw, hw)).astype(np.float32)
            W = rng.normal(size=(oc, c, 3, 3)).astype(np.float32)
            b = np.zeros(oc, np.float32)
            y = conv_fused.conv2d_forward(x, W, b, (1, 1), (p, p), relu=True)
            gy = rng.normal(size=y.shape).astype(np.float32)
            calls = {"fwd": lambda: conv_fused.conv2d_forward(x, W, b, (1, 1), (p, p), relu=True),
                     "bwd": lambda: conv_fused.conv2d_backward(x, W, gy, (1, 1), (p, p), (c > 1, True, True), y=y)}
            best: dict = {}
            for r in range(rounds):
                for shifted in ((False, True) if r % 2 == 0 else (True, False)):
                    conv_fused.SHIFTED_GEMMS = shifted
                    conv_fused.MIN_SHIFTED_CHANNELS, conv_fused.MAX_SHIFTED_WIDTH_RATIO = 1, float("inf")
                    for key, fn in calls.items():
                        fn()
                        ts = []
                        for _ in range(repeats):
                            start = time.perf_counter()
                            fn()
                            ts.append(time.perf_counter() - start)
                        best[key, shifted] = min(best.get((key, shifted), float("inf")), 1e3 * statistics.median(ts))
            print(f"{name}: fwd im2col {best['fwd', False]:.2f} per-tap {best['fwd', True]:.2f} | "
                  f"bwd im2col {best['bwd', False]:.2f} per-tap {best['bwd', True]:.2f}")
    finally:
        conv_fused.SHIFTED_GEMMS, conv_fused.MIN_SHIFTED_CHANNELS, conv_fused.MAX_SHIFTED_WIDTH_RATIO = saved


def inprocess(what: str, rounds: int, repeats: int) -> None:
    """Batched path against whole-conv slices, alternated in this process (min / median ms)."""
    import numpy as np

    import ember as em
    import ember.nn.functional as F
    from ember.backends.numba import conv as nc
    from ember.backends.numba import conv_fused
    from ember.models import DeepConvNet

    rng = np.random.default_rng(0)
    model = DeepConvNet()
    opt = em.optim.Adam(model.parameters(), lr=1e-3)
    if what == "step":
        x, t = em.tensor(rng.normal(size=(100, 1, 28, 28)).astype(np.float32)), em.tensor(rng.integers(0, 10, 100))

        def run() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), t).backward()
            opt.step()
    else:
        model.eval()
        x = em.tensor(rng.normal(size=(1000, 1, 28, 28)).astype(np.float32))

        def run() -> None:
            with em.no_grad():
                model(x)
    # (conv2d_supported, per-tap GEMMs on): the batched path, im2col slices, slices with per-tap GEMMs
    paths = {"batched": (lambda *a: False, False), "im2col": (conv_fused.conv2d_supported, False),
             "shifted": (conv_fused.conv2d_supported, True)}
    times: dict = {k: [] for k in paths}
    shifted_default = conv_fused.SHIFTED_GEMMS
    try:
        for r in range(rounds):
            for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
                nc.conv2d_supported, conv_fused.SHIFTED_GEMMS = paths[name]
                run()
                ts = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    ts.append(time.perf_counter() - start)
                times[name].append(1e3 * statistics.median(ts))
    finally:
        del nc.conv2d_supported
        conv_fused.SHIFTED_GEMMS = shifted_default
    unit = "ms per step" if what == "step" else "ms per 1000 images"
    for name, v in times.items():
        print(f"{what} {name:8s} min {min(v):8.1f}  median {statistics.median(v):8.1f}  ({unit})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default="/work/main,.", help="comma-separated source trees, or 'torch'")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats inside each process")
    parser.add_argument("--what", choices=("step", "eval", "layers"), default="step")
    parser.add_argument("--inprocess", action="store_true",
                        help="alternate the paths in this process instead of trees")
    args = parser.parse_args(argv)
    if args.inprocess:
        if args.what == "layers":
            layers_inprocess(args.rounds, min(args.repeats, 5))
        else:
            inprocess(args.what, args.rounds, min(args.repeats, 5))
        return
    trees = args.trees.split(",")
    results: dict = {t: {} for t in trees}
    for r in range(args.rounds):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            for key, ms in run_once(tree, args.what, args.repeats).items():
                results[tree].setdefault(key, []).append(ms)
    keys = list(results[trees[0]])
    print(f"{'ms (min / median over ' + str(args.rounds) + ' rounds)':40s}" + "".join(f"{t[-18:]:>22s}" for t in trees))
    for key in keys:
        cells = [f"{min(results[t][key]):8.2f} / {statistics.median(results[t][key]):8.2f}" for t in trees]
        print(f"{key:40s}" + "".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
