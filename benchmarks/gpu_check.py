"""Training-step timing of the book's networks on cuda: ember (CuPy) vs PyTorch, same GPU.

Each framework trains SimpleConvNet, DeepConvNet and the ch. 5 MLP (TwoLayerNet 784-50-10,
sigmoid) with Adam (lr 1e-3), batch 100, on one fixed batch already resident on the GPU (pure
step time: forward, loss, backward, update).  After ``--warmup`` steps, ``--repeats`` timed
blocks of ``--steps`` steps each are bracketed by device synchronisation; the median per-step
time is reported with the spread, plus the device name and package versions.  Writes JSON to
``$OUT/gpu_check.json`` when ``$OUT`` is set, else ``benchmarks/results/gpu_check.json``.

Usage: ``PYTHONPATH=. python benchmarks/gpu_check.py [--steps 20] [--repeats 5]``;
``--known-targets a,b,c`` prints the harness targets of that list this checkout has (for gpu_check.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy

BATCH = 100
MODELS = ("SimpleConvNet", "DeepConvNet", "MLP")


def _time_steps(step: Callable[[], None], sync: Callable[[], None], warmup: int, steps: int, repeats: int) -> dict:
    """Median and spread of the per-step time over ``repeats`` synchronised blocks of ``steps`` steps."""
    for _ in range(warmup):
        step()
    sync()
    per_step = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        per_step.append((time.perf_counter() - t0) / steps)
    return {"median_ms": 1e3 * statistics.median(per_step), "min_ms": 1e3 * min(per_step),
            "max_ms": 1e3 * max(per_step), "steps": steps, "repeats": repeats}


def _ember_model(name: str) -> Any:
    import ember as em

    if name == "SimpleConvNet":
        return em.models.SimpleConvNet()
    if name == "DeepConvNet":
        return em.models.DeepConvNet()
    return em.models.TwoLayerNet(784, 50, 10)


def ember_step(name: str, device: str = "cuda") -> tuple[Callable[[], None], Callable[[], None]]:
    """A closure running one ember training step of ``name`` on ``device``, and its sync."""
    import ember as em

    em.manual_seed(0)
    model = _ember_model(name).to(device)
    model.train()
    opt = em.optim.Adam(model.parameters(), lr=1e-3)
    rng = numpy.random.default_rng(0)
    x = em.tensor(rng.random((BATCH, 1, 28, 28), dtype=numpy.float32), device=device)
    t = em.tensor(rng.integers(0, 10, BATCH), device=device)

    def step() -> None:
        opt.zero_grad()
        em.nn.functional.cross_entropy(model(x), t).backward()
        opt.step()

    return step, em.cuda.synchronize if device != "cpu" else (lambda: None)


def _torch_model(name: str, torch: Any) -> Any:
    nn = torch.nn
    if name == "SimpleConvNet":
        return nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
    if name == "DeepConvNet":
        layers, c = [], 1
        for i, (f, pad) in enumerate([(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]):
            layers += [nn.Conv2d(c, f, 3, padding=pad), nn.ReLU()]
            c = f
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2, 2))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(50, 10), nn.Dropout(0.5))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.Sigmoid(), nn.Linear(50, 10))


def torch_step(name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """The same step in PyTorch eager on cuda (cuDNN defaults, TF32 off for float32 matmuls)."""
    import torch

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _torch_model(name, torch).cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 1, 28, 28, device="cuda")
    t = torch.randint(0, 10, (BATCH,), device="cuda")
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), t).backward()
        opt.step()

    return step, torch.cuda.synchronize


def environment() -> dict:
    """Device name, driver/runtime and package versions (whatever is importable)."""
    info: dict[str, Any] = {"python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import cupy

        import ember as em

        info.update(cupy=cupy.__version__, device=em.cuda.get_device_name(0),
                    cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                    cuda_driver=cupy.cuda.runtime.driverGetVersion())
    except Exception as e:  # noqa: BLE001 - report, do not fail the whole check
        info["cupy_error"] = f"{type(e).__name__}: {e}"
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def known_targets(names: list[str]) -> tuple[list[str], list[str]]:
    """``(known, unknown)``: ``names`` split by whether this checkout's harness registry has them.

    gpu_check.sh asks for targets other branches add (the CUDA-graph ones); the harness
    rejects unknown names, so the script passes only the known ones and reports the rest.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.targets import TARGETS

    return [n for n in names if n in TARGETS], [n for n in names if n not in TARGETS]


def main(argv: list[str] | None = None) -> int:
    """Time every model in every available framework and write the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--known-targets", metavar="NAMES",
                    help="print the comma-separated NAMES this checkout's harness knows, and exit")
    args = ap.parse_args(argv)
    if args.known_targets is not None:
        known, unknown = known_targets([n.strip() for n in args.known_targets.split(",") if n.strip()])
        if unknown:
            print(f"not in this checkout's harness (skipped): {', '.join(unknown)}", file=sys.stderr)
        print(",".join(known))
        return 0
    report: dict[str, Any] = {"environment": environment(), "batch": BATCH, "dtype": "float32",
                              "optimizer": "Adam(lr=1e-3)", "results": {}}
    for name in args.models:
        row: dict[str, Any] = {}
        for framework, make in (("ember_cuda", ember_step), ("torch_cuda", torch_step)):
            try:
                step, sync = make(name)
                row[framework] = _time_steps(step, sync, args.warmup, args.steps, args.repeats)
            except Exception as e:  # noqa: BLE001 - one failing framework must not hide the other's numbers
                row[framework] = {"error": f"{type(e).__name__}: {e}"}
        if "median_ms" in row.get("ember_cuda", {}) and "median_ms" in row.get("torch_cuda", {}):
            row["ember_over_torch"] = row["ember_cuda"]["median_ms"] / row["torch_cuda"]["median_ms"]
        report["results"][name] = row
        print(name, json.dumps(row), flush=True)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print("wrote", out_dir / "gpu_check.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
