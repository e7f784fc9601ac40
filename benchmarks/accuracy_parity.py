"""Accuracy parity with PyTorch: the nn issue's acceptance runs, ember vs a PyTorch twin.

Ember trains through the CLI itself (``ember.train.main``, with the
``on_setup`` hook handing over the initial weights and the loader's state), so
the number recorded here is the number ``python -m ember.train`` prints. A
PyTorch twin of the same network (built here; torch is imported only in this
file) then starts from ember's initial weights (copied; conv ``(out, in, kh,
kw)`` and Linear ``(out, in)`` layouts are the same in both) and sees the same
batches in the same order: a second ``ember.data.DataLoader`` restored from the
CLI loader's ``state_dict()`` yields the identical permutation every epoch.
Same optimizer and hyper-parameters, float32 both.

A lockstep check replays the first ``--lockstep`` batches from the same initial
weights in both, step by step, recording both losses: a gap at step 1 means a
forward bug, a gap that opens later a backward or optimizer bug.

Cases (Fashion-MNIST, batch 100): ``simple_convnet`` (the book's SimpleConvNet,
N(0, 0.01^2) init, Adam 1e-3, 3 epochs) and ``two_layer_net`` (784-50-10
sigmoid, SGD lr 0.1, 5 epochs). Run from the repository root; results go to
``benchmarks/results/accuracy_parity.{json,md}``, replacing only the cases run::

    EMBER_DATA=/path/to/data python -m benchmarks.accuracy_parity
    python -m benchmarks.accuracy_parity --case two_layer_net --dataset digits --epochs 1 --out /tmp/r
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `import ember` / `benchmarks` find the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy

import ember as em
import ember.train as cli
from benchmarks.harness import machine
from benchmarks.harness.io import write_atomic
from ember.data import DataLoader
from ember.training.loop import train_epoch

RESULTS = Path(__file__).resolve().parent / "results"

CASES: dict[str, dict[str, Any]] = {
    "simple_convnet": {
        "argv": ["--model", "simple_convnet", "--dataset", "fashion-mnist", "--epochs", "3", "--batch-size", "100",
                 "--optimizer", "adam", "--lr", "0.001", "--init", "0.01"],
        "min_test_accuracy": 0.875, "max_gap_vs_torch": 0.01, "torch_reference": 0.880,
    },
    "two_layer_net": {
        "argv": ["--model", "two_layer_net", "--dataset", "fashion-mnist", "--epochs", "5", "--batch-size", "100",
                 "--optimizer", "sgd", "--lr", "0.1", "--init", "0.01"],
        "min_test_accuracy": 0.80, "max_gap_vs_torch": None, "torch_reference": 0.819,
    },
}


def override(argv: list[str], flag: str, value: Any) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag appended)."""
    i = argv.index(flag) if flag in argv else None
    return argv + [flag, str(value)] if i is None else argv[:i + 1] + [str(value)] + argv[i + 2:]


def torch_twin(torch: Any, model: Any) -> Any:
    """A torch module with ember ``model``'s architecture and parameter names (state-dict keys)."""
    nn, kind = torch.nn, type(model).__name__
    if kind not in ("SimpleConvNet", "TwoLayerNet"):
        raise ValueError(f"accuracy_parity: no PyTorch twin for model {kind}; supported: SimpleConvNet, TwoLayerNet")
    twin = nn.Module()
    twin.affine1 = nn.Linear(model.affine1.in_features, model.affine1.out_features)
    twin.affine2 = nn.Linear(model.affine2.in_features, model.affine2.out_features)
    if kind == "SimpleConvNet":
        w = model.conv1.weight
        twin.conv1 = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=model.conv1.stride,
                               padding=model.conv1.padding)

        def forward(x: Any) -> Any:
            x = torch.nn.functional.max_pool2d(torch.relu(twin.conv1(x)), 2, 2)
            return twin.affine2(torch.relu(twin.affine1(x.flatten(1))))
    else:
        act = {"Sigmoid": torch.sigmoid, "ReLU": torch.relu, "Tanh": torch.tanh}[type(model.act).__name__]

        def forward(x: Any) -> Any:
            return twin.affine2(act(twin.affine1(x.flatten(1))))
    twin.forward = forward
    return twin


def load_into_torch(torch: Any, twin: Any, state: dict[str, numpy.ndarray]) -> None:
    """Copy ember's arrays into the twin; the keys and shapes must match exactly."""
    ours = twin.state_dict()
    if set(ours) != set(state):
        raise KeyError(f"accuracy_parity: twin keys {sorted(ours)} != ember keys {sorted(state)}")
    for k, v in state.items():
        if tuple(ours[k].shape) != v.shape:
            raise ValueError(f"accuracy_parity: {k}: torch shape {tuple(ours[k].shape)}, ember shape {v.shape}")
    twin.load_state_dict({k: torch.from_numpy(numpy.array(v, dtype=numpy.float32)) for k, v in state.items()})


def torch_optimizer(torch: Any, ember_optimizer: Any, params: Any) -> Any:
    """torch.optim.SGD/Adam with the ember optimizer's hyper-parameters (group 0)."""
    g = ember_optimizer.param_groups[0]
    kind = type(ember_optimizer).__name__
    if kind == "SGD":
        return torch.optim.SGD(params, lr=g["lr"], momentum=g["momentum"], dampening=g["dampening"],
                               weight_decay=g["weight_decay"], nesterov=g["nesterov"])
    if kind == "Adam" and not g["decoupled_weight_decay"]:
        return torch.optim.Adam(params, lr=g["lr"], betas=tuple(g["betas"]), eps=g["eps"],
                                weight_decay=g["weight_decay"], amsgrad=g["amsgrad"])
    raise ValueError(f"accuracy_parity: no torch mapping for optimizer {kind}; supported: SGD, Adam")


def torch_step(torch: Any, twin: Any, opt: Any, x: numpy.ndarray, y: numpy.ndarray) -> tuple[float, int]:
    """One training step on a numpy batch; returns (loss before the step, correct predictions)."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    logits = twin(xt)
    loss = torch.nn.functional.cross_entropy(logits, yt)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item()), int((logits.argmax(1) == yt).sum().item())


def torch_evaluate(torch: Any, twin: Any, x_all: numpy.ndarray, y_all: numpy.ndarray, batch: int = 1000) -> dict:
    """Mean loss and accuracy, as ``ember.training.loop.evaluate`` computes them."""
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x_all), batch):
            x, y = torch.from_numpy(x_all[i:i + batch]), torch.from_numpy(y_all[i:i + batch])
            logits = twin(x)
            total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item())
            correct += int((logits.argmax(1) == y).sum().item())
    return {"loss": total / max(len(x_all), 1), "accuracy": correct / max(len(x_all), 1)}


def twin_loader(setup: dict) -> DataLoader:
    """A loader that yields the CLI loader's batches in the CLI loader's order (restored state)."""
    loader = setup["loader"]
    twin = DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=loader.shuffle,
                      drop_last=loader.drop_last, seed=0)
    twin.load_state_dict(setup["loader_state"])
    return twin


def train_torch(torch: Any, setup: dict, epochs: int) -> list[dict]:
    """The twin's run: same initial weights, same batches, same optimizer; per-epoch metrics."""
    twin = torch_twin(torch, setup["model"])
    load_into_torch(torch, twin, setup["init"])
    opt = torch_optimizer(torch, setup["optimizer"], twin.parameters())
    loader = twin_loader(setup)
    x_test, y_test = setup["data"].test.arrays()
    records = []
    for epoch in range(1, epochs + 1):
        total, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        for x, y in loader.iter_arrays():
            loss, right = torch_step(torch, twin, opt, x, y)
            total += loss * len(y)
            correct += right
            seen += len(y)
        seconds = time.perf_counter() - start
        test = torch_evaluate(torch, twin, x_test, y_test)
        records.append({"epoch": epoch, "train_loss": total / seen, "train_accuracy": correct / seen,
                        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                        "samples_per_s": seen / seconds, "seconds": seconds})
        print(f"  torch epoch {epoch}/{epochs}  train loss {records[-1]['train_loss']:.4f}  "
              f"test acc {test['accuracy']:.4f}  ({seen / seconds:.0f} samples/s)")
    return records


def lockstep(torch: Any, setup: dict, steps: int) -> dict:
    """The first ``steps`` batches in both frameworks from the same weights: per-step losses.

    Ember: the CLI's model reset to the initial weights, a fresh optimizer of the
    same class and hyper-parameters, ``train_epoch`` on one batch at a time (its
    loss is that batch's loss before the update).
    """
    model, ember_opt = setup["model"], setup["optimizer"]
    model.load_state_dict(setup["init"])
    hyper = {k: v for k, v in ember_opt.param_groups[0].items() if k not in ("params", "param_names")}
    opt = type(ember_opt)(model.parameters(), **hyper)
    twin = torch_twin(torch, model)
    load_into_torch(torch, twin, setup["init"])
    topt = torch_optimizer(torch, ember_opt, twin.parameters())
    ember_losses, torch_losses = [], []
    for step, (x, y) in enumerate(twin_loader(setup).iter_arrays()):
        if step >= steps:
            break
        batch = [(em.from_numpy(x), em.from_numpy(y))]
        ember_losses.append(train_epoch(model, batch, opt, 1, dtype=setup["dtype"])["loss"])
        torch_losses.append(torch_step(torch, twin, topt, x, y)[0])
    tstate = twin.state_dict()
    param_gap = max(float(numpy.abs(v.numpy() - tstate[k].detach().numpy()).max())
                    for k, v in model.state_dict().items())
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ember_losses, torch_losses)]
    return {"steps": len(ember_losses), "ember_loss": ember_losses, "torch_loss": torch_losses,
            "rel_loss_diff": rel, "step1_rel_loss_diff": rel[0] if rel else None,
            "max_rel_loss_diff": max(rel) if rel else None, "param_max_abs_diff_after": param_gap}


def run_ember(argv: list[str]) -> tuple[list[dict], dict]:
    """Train through ``ember.train.main``; returns its per-epoch history and what ``on_setup`` saw."""
    setup: dict = {}

    def on_setup(model: Any, optimizer: Any, loader: Any, data: Any, dtype: Any, start_epoch: int) -> None:
        setup.update(model=model, optimizer=optimizer, loader=loader, data=data, dtype=dtype,
                     init={k: v.numpy().copy() for k, v in model.state_dict().items()},
                     loader_state=loader.state_dict())

    with tempfile.TemporaryDirectory(prefix="ember-parity-") as tmp:
        code = cli.main(argv + ["--out", tmp, "--no-plot", "--progress", "off"], on_setup=on_setup)
        if code != 0:
            raise RuntimeError(f"accuracy_parity: ember.train exited with {code} for {shlex.join(argv)}")
        history = json.loads((Path(tmp) / "history.json").read_text())
    return history["epochs"], setup


def check_cli(argv: list[str]) -> dict:
    """Run ``python -m ember.train`` in a fresh process; its final test accuracy must equal ours."""
    with tempfile.TemporaryDirectory(prefix="ember-cli-") as tmp:
        cmd = [sys.executable, "-m", "ember.train", *argv, "--out", tmp, "--no-plot", "--progress", "off"]
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL)
        epochs = json.loads((Path(tmp) / "history.json").read_text())["epochs"]
    return {"test_accuracy": epochs[-1]["test_accuracy"], "test_loss": epochs[-1]["test_loss"]}


def run_case(name: str, args: argparse.Namespace) -> dict:
    """Ember via the CLI, the torch twin, the lockstep check, and the comparison."""
    spec = CASES[name]
    argv = list(spec["argv"])
    for flag, value in (("--dataset", args.dataset), ("--epochs", args.epochs), ("--max-train", args.max_train),
                        ("--max-test", args.max_test), ("--data-dir", args.data_dir)):
        if value is not None:
            argv = override(argv, flag, value)
    overridden = argv != spec["argv"]
    argv = override(argv, "--seed", args.seed)
    # BLAS thread counts change float summation order, so they are part of an exact reproduction.
    env = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ]
    command = " ".join(["EMBER_DATA=<data folder>", *env, "python -m ember.train", shlex.join(argv)])
    print(f"[{name}] ember: {command}")
    ember_epochs, setup = run_ember(argv)
    epochs = len(ember_epochs)
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {"cli_argv": argv, "model": type(setup["model"]).__name__, "dataset": setup["data"].name,
                     "n_train": len(setup["data"].train), "n_test": len(setup["data"].test), "epochs": epochs,
                     "batch_size": setup["loader"].batch_size, "optimizer": type(setup["optimizer"]).__name__,
                     "optimizer_hyperparameters": {k: v for k, v in setup["optimizer"].param_groups[0].items()
                                                   if k not in ("params", "param_names")},
                     "dtype": "float32" if setup["dtype"] == em.float32 else str(setup["dtype"]),
                     "seed": args.seed, "issue_settings": not overridden},
        "cli_command": command,
        "ember": {"epochs": ember_epochs},
        "targets": {"min_test_accuracy": spec["min_test_accuracy"], "max_gap_vs_torch": spec["max_gap_vs_torch"],
                    "torch_reference_from_issue": spec["torch_reference"]},
    }
    final = ember_epochs[-1]["test_accuracy"]
    met: dict[str, Any] = {"min_test_accuracy": final >= spec["min_test_accuracy"]}
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: ember only (no twin, no lockstep)")
    if torch is not None:
        torch.manual_seed(args.seed)
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        print(f"[{name}] torch twin ({torch.__version__}, {torch.get_num_threads()} threads)")
        t_epochs = train_torch(torch, setup, epochs)
        keys = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
        result["torch"] = {"epochs": t_epochs, "num_threads": torch.get_num_threads()}
        result["diff_ember_minus_torch"] = [{"epoch": e["epoch"], **{k: e[k] - t[k] for k in keys},
                                             "samples_per_s_ratio": e["samples_per_s"] / t["samples_per_s"]}
                                            for e, t in zip(ember_epochs, t_epochs)]
        gap = final - t_epochs[-1]["test_accuracy"]
        result["final_test_accuracy_gap"] = gap
        if spec["max_gap_vs_torch"] is not None:
            met["max_gap_vs_torch"] = abs(gap) <= spec["max_gap_vs_torch"]
        result["lockstep"] = lockstep(torch, setup, args.lockstep)
        ls = result["lockstep"]
        print(f"[{name}] lockstep: step-1 loss ember {ls['ember_loss'][0]:.6f} torch {ls['torch_loss'][0]:.6f}")
    if args.check_cli:
        cli_result = check_cli(argv)
        cli_result["matches_script"] = cli_result["test_accuracy"] == final
        result["cli_check"] = cli_result
        print(f"[{name}] CLI subprocess test accuracy {cli_result['test_accuracy']:.4f} (script: {final:.4f})")
    result["targets"]["met"] = met
    return result


def machine_info() -> dict:
    """The harness's machine record (CPU, load, thread settings) and package versions, plus the git commit."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except OSError:
        commit = None
    return {**machine.machine_info(), **machine.versions(), "git_commit": commit}


def _pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals, or a dash."""
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def render_markdown(results: dict) -> str:
    """Per case: settings, the CLI command, per-epoch ember vs torch, lockstep summary and targets."""
    lines = ["# Accuracy parity: ember vs PyTorch, same initial weights and batch order", ""]
    for name, r in results["cases"].items():
        s, m = r["settings"], r["machine"]
        lines += [f"## {name}", "",
                  f"{s['model']} on {s['dataset']} ({s['n_train']} train / {s['n_test']} test), "
                  f"{s['optimizer']} {s['optimizer_hyperparameters'].get('lr')}, batch {s['batch_size']}, "
                  f"{s['epochs']} epochs, {s['dtype']}, seed {s['seed']}; measured {r['date']}.", "",
                  f"Ember alone: `{r['cli_command']}`", "",
                  "| epoch | ember train loss | torch train loss | ember test acc | torch test acc | diff (pt) "
                  "| ember samples/s | torch samples/s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        t_epochs = r.get("torch", {}).get("epochs", [])
        for e, t in zip(r["ember"]["epochs"], t_epochs + [{}] * len(r["ember"]["epochs"])):
            gap = f"{100 * (e['test_accuracy'] - t['test_accuracy']):+.2f}" if t else "—"
            lines.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {t.get('train_loss', math.nan):.4f} | "
                         f"{_pct(e['test_accuracy'])} | {_pct(t.get('test_accuracy'))} | {gap} | "
                         f"{e['samples_per_s']:.0f} | {t.get('samples_per_s', math.nan):.0f} |")
        tg = r["targets"]
        note = "" if s["issue_settings"] else " (targets apply to the issue's settings only; this run overrode them)"
        lines += ["", f"Target: test accuracy >= {_pct(tg['min_test_accuracy'])} "
                  f"(issue's PyTorch reference {_pct(tg['torch_reference_from_issue'])})"
                  + (f", within {100 * tg['max_gap_vs_torch']:.1f} pt of the twin" if tg["max_gap_vs_torch"] else "")
                  + ": " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in tg["met"].items()) + "." + note]
        if "lockstep" in r:
            ls = r["lockstep"]
            lines.append(f"Lockstep over the first {ls['steps']} batches: step-1 loss ember {ls['ember_loss'][0]:.6f} "
                         f"vs torch {ls['torch_loss'][0]:.6f} (rel. diff {ls['step1_rel_loss_diff']:.1e}); "
                         f"max rel. loss diff {ls['max_rel_loss_diff']:.1e}; max |param diff| after "
                         f"{ls['param_max_abs_diff_after']:.1e}.")
        if "cli_check" in r:
            c = r["cli_check"]
            lines.append(f"CLI re-run in a fresh process: test accuracy {_pct(c['test_accuracy'])} "
                         f"({'identical to' if c['matches_script'] else 'DIFFERENT from'} the script's).")
        lines += ["", f"Machine: {m['cpu']} ({m['cpu_count']} cpus, shared with other jobs, load average "
                  f"{m.get('load_average')}: samples/s are noisy), "
                  f"Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}, PyTorch {m['torch']}"
                  f" ({r.get('torch', {}).get('num_threads', '—')} threads), ember {m['ember']} @ {m['git_commit']}.",
                  ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen cases, print progress, merge into and write the results files."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--case", action="append", choices=sorted(CASES), help="case to run (repeatable; default: all)")
    p.add_argument("--dataset", default=None, help="override the dataset (e.g. digits for a quick check)")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs")
    p.add_argument("--max-train", type=int, default=None, help="train on a random subset of N images")
    p.add_argument("--max-test", type=int, default=None, help="evaluate on a random subset of N images")
    p.add_argument("--data-dir", default=None, help="folder searched first for the IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lockstep", type=int, default=20, help="batches replayed step by step in both (default 20)")
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--no-torch", action="store_true", help="ember only")
    p.add_argument("--check-cli", action="store_true", help="also run the CLI in a subprocess; compare accuracy")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    path = args.out / "accuracy_parity.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {"benchmark": "accuracy_parity", "cases": {}}
    for name in args.case or list(CASES):
        case = run_case(name, args)
        case["machine"] = machine_info()
        results["cases"][name] = case
    write_atomic(path, json.dumps(results, indent=2) + "\n")
    text = render_markdown(results)
    write_atomic(args.out / "accuracy_parity.md", text)
    print(text)
    return results


if __name__ == "__main__":
    main()
