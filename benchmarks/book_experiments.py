"""The book's chapter 6 experiments with ``ember.models.MultiLayerNet``: batch norm, weight decay, dropout.

(a) ``batchnorm`` (the book's ``batch_norm_test.py``): a 5x100 ReLU MLP on a
1,000-image training subset, SGD lr 0.01, batch 100, 20 epochs, with and
without BatchNorm, for several weight-init standard deviations (the book's
``logspace(0, -4, 16)`` plus He). Each pair starts from the same Linear
weights (BatchNorm1d draws no random numbers) and sees the same batch order.
The book plots training accuracy; both train and test accuracy are recorded.

(b) ``overfitting`` (the book's ``overfit_weight_decay.py`` / ``overfit_dropout.py``):
a 6x100 ReLU MLP (He init) on 300 training images, SGD lr 0.01, batch 100,
200 epochs, three variants: plain; weight decay lambda 0.1, applied the book's
way as ``0.5 * lambda * sum ||W||^2`` over the weights (not biases), added to
the loss by ``MultiLayerNet.regularization()`` through
``ember.training.loop.compute_loss`` (not the optimizer's ``weight_decay``);
and dropout with ratio 0.2 after each hidden activation.

Training reuses the CLI's code (``ember.training.loop.train_epoch`` and
``evaluate``, ``ember.training.datasets.load_data``). Accuracies are measured
after every epoch in eval mode (dropout off, BatchNorm running statistics) on
the whole training subset and on the test set. The book used MNIST; here the
default is Fashion-MNIST (the full MNIST training set is not available offline
here), so absolute numbers are lower than the book's.

Run from the repository root (results: ``benchmarks/results/book_experiments.{json,md}`` and
``book_experiments_batchnorm.png`` / ``book_experiments_overfitting.png``)::

    EMBER_DATA=/path/to/data python -m benchmarks.book_experiments
    python -m benchmarks.book_experiments --dataset digits --bn-epochs 2 --of-epochs 2 --out /tmp/r
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `import ember` / `benchmarks` find the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy

import ember as em
from benchmarks.accuracy_parity import machine_info
from benchmarks.harness.io import write_atomic
from ember.data import DataLoader
from ember.models import MultiLayerNet
from ember.training.datasets import load_data
from ember.training.loop import NonFiniteLossError, evaluate, train_epoch

RESULTS = Path(__file__).resolve().parent / "results"
BOOK_SCALES = [float(s) for s in numpy.logspace(0, -4, num=16)]
OVERFIT_VARIANTS = {
    "plain": {},
    "weight_decay": {"weight_decay_lambda": 0.1},
    "dropout": {"use_dropout": True, "dropout_ratio": 0.2},
}


def train_curve(make_model: Any, data: Any, epochs: int, lr: float, batch_size: int, seed: int) -> dict:
    """SGD from a freshly seeded model; per epoch: train loss (running mean), train and test accuracy (eval mode).

    A run whose loss becomes NaN/inf stops there (the loop refuses the step):
    its curves end early and ``diverged`` says where; it is not fatal.
    """
    em.manual_seed(seed)
    model = make_model()
    optimizer = em.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(data.train, batch_size=batch_size, shuffle=True, seed=seed)
    curve: dict[str, Any] = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "diverged": None}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        try:
            stats = train_epoch(model, loader, optimizer, epoch)
        except NonFiniteLossError as e:
            curve["diverged"] = str(e)
            break
        curve["train_loss"].append(stats["loss"])
        curve["train_accuracy"].append(evaluate(model, data.train)["accuracy"])
        curve["test_accuracy"].append(evaluate(model, data.test)["accuracy"])
    curve["seconds"] = time.perf_counter() - start
    return curve


def _ahead(a: list, b: list, epochs: int) -> int:
    """Epochs at which curve ``a`` is above ``b``; an epoch one of them did not reach (diverged) counts against it."""
    return sum((i < len(a)) and (i >= len(b) or a[i] > b[i]) for i in range(epochs))


def _bn_final_higher(run: dict, epochs: int) -> bool:
    """BatchNorm finished all epochs and ends above the plain net (or the plain net diverged)."""
    bn, plain = run["batchnorm"]["train_accuracy"], run["plain"]["train_accuracy"]
    return len(bn) == epochs and (len(plain) < epochs or bn[-1] > plain[-1])


def batchnorm_experiment(args: argparse.Namespace) -> dict:
    """(a) BatchNorm vs none, per weight scale: accuracy curves and who is ahead after each epoch."""
    data = load_data(args.dataset, args.data_dir, args.bn_train, args.max_test, seed=args.seed)
    hidden = [100] * 5
    runs = []
    for scale in args.bn_scales:
        init: Any = scale if isinstance(scale, str) else float(scale)
        pair = {}
        for use_bn in (True, False):
            make = partial(MultiLayerNet, data.input_dim, hidden, data.num_classes, weight_init_std=init,
                           use_batchnorm=use_bn)
            pair["batchnorm" if use_bn else "plain"] = train_curve(make, data, args.bn_epochs, 0.01, 100, args.seed)
        bn, plain = pair["batchnorm"]["train_accuracy"], pair["plain"]["train_accuracy"]
        ahead = _ahead(bn, plain, args.bn_epochs)
        full = len(bn) == len(plain) == args.bn_epochs
        runs.append({"weight_init_std": init, **pair, "epochs_bn_ahead_train": ahead,
                     "epochs_plain_ahead_train": _ahead(plain, bn, args.bn_epochs),
                     "final_train_accuracy_bn_minus_plain": (bn[-1] - plain[-1]) if full else None})
        print(f"  [batchnorm] init {init}: final train acc BN {_final(pair['batchnorm'])} vs "
              f"plain {_final(pair['plain'])}; BN ahead in {ahead}/{args.bn_epochs} epochs", flush=True)
    return {"settings": {"dataset": data.name, "n_train": len(data.train), "n_test": len(data.test),
                         "hidden": hidden, "activation": "relu", "optimizer": "SGD", "lr": 0.01, "batch_size": 100,
                         "epochs": args.bn_epochs, "seed": args.seed},
            "runs": runs,
            "summary": {"scales": len(runs),
                        "scales_bn_final_train_higher": sum(1 for r in runs if _bn_final_higher(r, args.bn_epochs)),
                        "scales_bn_ahead_most_epochs": sum(1 for r in runs
                                                           if r["epochs_bn_ahead_train"] > args.bn_epochs / 2)}}


def overfitting_experiment(args: argparse.Namespace) -> dict:
    """(b) plain vs weight decay vs dropout on 300 images: train/test accuracy curves and the final gap."""
    data = load_data(args.dataset, args.data_dir, args.of_train, args.max_test, seed=args.seed)
    hidden = [100] * 6
    variants = {}
    for name, extra in OVERFIT_VARIANTS.items():
        curve = train_curve(partial(MultiLayerNet, data.input_dim, hidden, data.num_classes, **extra),
                            data, args.of_epochs, 0.01, 100, args.seed)
        tr, te = curve["train_accuracy"], curve["test_accuracy"]
        if tr:
            last = min(10, len(tr))
            curve["final_gap"] = tr[-1] - te[-1]
            curve["gap_last10_mean"] = float(numpy.mean(numpy.subtract(tr[-last:], te[-last:])))
        variants[name] = {"model_kwargs": extra, **curve}
        print(f"  [overfitting] {name}: final train {_final(curve)} test {_final(curve, 'test_accuracy')} "
              f"gap {curve.get('final_gap')}", flush=True)
    plain_gap = variants["plain"].get("gap_last10_mean")
    return {"settings": {"dataset": data.name, "n_train": len(data.train), "n_test": len(data.test),
                         "hidden": hidden, "activation": "relu", "weight_init_std": "he", "optimizer": "SGD",
                         "lr": 0.01, "batch_size": 100, "epochs": args.of_epochs, "seed": args.seed,
                         "weight_decay_mechanism": "MultiLayerNet(weight_decay_lambda=0.1).regularization() added "
                                                   "to the loss by ember.training.loop.compute_loss "
                                                   "(0.5*lambda*sum W^2, weights only)"},
            "variants": variants,
            "summary": {name: {"gap_last10_mean": v.get("gap_last10_mean"),
                               "gap_reduced_vs_plain": (v.get("gap_last10_mean") is not None and plain_gap is not None
                                                        and v["gap_last10_mean"] < plain_gap)}
                        for name, v in variants.items() if name != "plain"}}


def _final(curve: dict, key: str = "train_accuracy") -> str:
    """The last value of ``curve[key]`` for the progress line, or why the run stopped."""
    values = curve[key]
    return f"{values[-1]:.4f}" if len(values) and not curve["diverged"] else f"diverged ({curve['diverged']})"


# ----------------------------------------------------------------------------- plots and tables
def _pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_batchnorm(path: Path, result: dict) -> None:
    """One panel per weight scale: train accuracy with (solid) and without (dashed) BatchNorm, as the book."""
    plt = _pyplot()
    runs = result["runs"]
    cols = 4
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        for i, (key, style, label) in enumerate((("batchnorm", "-", "BatchNorm"), ("plain", "--", "no BN"))):
            acc = run[key]["train_accuracy"]
            ax.plot(range(1, len(acc) + 1), acc, style, color=f"C{i}", label=label)
            if run[key]["diverged"]:
                ax.text(0.97, 0.05 + 0.1 * i, f"{label}: NaN loss in epoch {len(acc) + 1}", color=f"C{i}",
                        ha="right", fontsize=7, transform=ax.transAxes)
        w = run["weight_init_std"]
        ax.set_title(f"init std {w:.2g}" if isinstance(w, float) else f"init {w}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"MultiLayerNet 5x100 on {s['n_train']} {s['dataset']} images: train accuracy per epoch")
    fig.supxlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_overfitting(path: Path, result: dict) -> None:
    """One panel per variant: train (solid) and test (dashed) accuracy per epoch, as the book's figures."""
    plt = _pyplot()
    variants = result["variants"]
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6), sharey=True, squeeze=False)
    for ax, (name, v) in zip(axes[0], variants.items()):
        xs = range(1, len(v["train_accuracy"]) + 1)
        ax.plot(xs, v["train_accuracy"], "-", label="train")
        ax.plot(xs, v["test_accuracy"], "--", label="test")
        gap = v.get("final_gap")
        ax.set_title(f"{name.replace('_', ' ')}" + (f" (final gap {100 * gap:.1f} pt)" if gap is not None else ""),
                     fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0][0].set_ylabel("accuracy")
    s = result["settings"]
    fig.suptitle(f"MultiLayerNet 6x100 on {s['n_train']} {s['dataset']} images")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal, or a dash."""
    return "—" if x is None else f"{100 * x:.1f}%"


def _pt(x: float | None) -> str:
    """A difference of two fractions in percentage points, or a dash."""
    return "—" if x is None else f"{100 * x:.1f} pt"


def _cell(curve: dict, key: str) -> str:
    """The final value as a percentage, or where the run diverged."""
    if curve["diverged"]:
        return f"diverged in epoch {len(curve[key]) + 1}"
    return _pct(curve[key][-1] if curve[key] else None)


def render_markdown(results: dict) -> str:
    """Tables of (a) final accuracies per scale and (b) final accuracies and gaps per variant."""
    m = results["machine"]
    lines = ["# The book's chapter 6 experiments with ember.models.MultiLayerNet", ""]
    if "batchnorm" in results:
        r = results["batchnorm"]
        s, sm = r["settings"], r["summary"]
        lines += ["## (a) Batch normalization", "",
                  f"5x100 ReLU, {s['n_train']} {s['dataset']} training images, test on {s['n_test']}; SGD lr "
                  f"{s['lr']}, batch {s['batch_size']}, {s['epochs']} epochs, seed {s['seed']}; "
                  f"{r['seconds']:.0f} s. Curves: `book_experiments_batchnorm.png`.", "",
                  "| init std | train acc BN | train acc no BN | test acc BN | test acc no BN | epochs BN ahead |",
                  "|---|---:|---:|---:|---:|---:|"]
        for run in r["runs"]:
            bn, pl = run["batchnorm"], run["plain"]
            w = run["weight_init_std"]
            lines.append(f"| {w:.3g} | " if isinstance(w, float) else f"| {w} | ")
            lines[-1] += (f"{_cell(bn, 'train_accuracy')} | {_cell(pl, 'train_accuracy')} | "
                          f"{_cell(bn, 'test_accuracy')} | {_cell(pl, 'test_accuracy')} | "
                          f"{run['epochs_bn_ahead_train']}/{s['epochs']} |")
        lines += ["", f"BatchNorm ends with the higher train accuracy at {sm['scales_bn_final_train_higher']} of "
                  f"{sm['scales']} init scales and is ahead in most epochs at {sm['scales_bn_ahead_most_epochs']}.", ""]
    if "overfitting" in results:
        r = results["overfitting"]
        s = r["settings"]
        lines += ["## (b) Overfitting: weight decay and dropout", "",
                  f"6x100 ReLU (He init), {s['n_train']} {s['dataset']} training images, test on {s['n_test']}; "
                  f"SGD lr {s['lr']}, batch {s['batch_size']}, {s['epochs']} epochs, seed {s['seed']}; "
                  f"{r['seconds']:.0f} s. Weight decay: {s['weight_decay_mechanism']}. "
                  "Curves: `book_experiments_overfitting.png`.", "",
                  "| variant | final train acc | final test acc | final gap | mean gap, last 10 epochs |",
                  "|---|---:|---:|---:|---:|"]
        for name, v in r["variants"].items():
            lines.append(f"| {name} | {_cell(v, 'train_accuracy')} | {_cell(v, 'test_accuracy')} | "
                         f"{_pt(v.get('final_gap'))} | {_pt(v.get('gap_last10_mean'))} |")
        lines += ["", "Gap smaller than plain: " + ", ".join(
            f"{k} {'yes' if v['gap_reduced_vs_plain'] else 'NO'}" for k, v in r["summary"].items()) + ".", ""]
    lines += [f"Machine: {m['cpu']} ({m['cpu_count']} cpus, shared; load average {m.get('load_average')}), "
              f"Python {m['python']}, NumPy {m['numpy']}, "
              f"Numba {m['numba']}, ember {m['ember']} @ {m['git_commit']}; {results['date']}.", ""]
    return "\n".join(lines)


def _scale(text: str) -> Any:
    """argparse type of ``--bn-scales``: a number, else a name such as 'he'."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen experiments, write JSON, markdown and PNG curves."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.book_experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", action="append", choices=("batchnorm", "overfitting"),
                   help="experiment to run (repeatable; default: both)")
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default), mnist or digits")
    p.add_argument("--data-dir", default=None, help="folder searched first for the IDX files")
    p.add_argument("--max-test", type=int, default=None, help="test on a random subset of N images (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-train", type=int, default=1000, help="training images for (a) (book: 1000)")
    p.add_argument("--bn-epochs", type=int, default=20, help="epochs for (a) (book: 20)")
    p.add_argument("--bn-scales", type=_scale, nargs="+", default=BOOK_SCALES + ["he"],
                   help="weight-init stds for (a), numbers or 'he' (default: the book's logspace(0,-4,16) and he)")
    p.add_argument("--of-train", type=int, default=300, help="training images for (b) (book: 300)")
    p.add_argument("--of-epochs", type=int, default=200, help="epochs for (b) (book: 201 / 301)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"benchmark": "book_experiments",
                               "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                               "machine": machine_info()}
    for name in args.experiment or ["batchnorm", "overfitting"]:
        start = time.perf_counter()
        print(f"[{name}]")
        result = batchnorm_experiment(args) if name == "batchnorm" else overfitting_experiment(args)
        result["seconds"] = time.perf_counter() - start
        results[name] = result
        args.out.mkdir(parents=True, exist_ok=True)
        plot = plot_batchnorm if name == "batchnorm" else plot_overfitting
        plot(args.out / f"book_experiments_{name}.png", result)
    write_atomic(args.out / "book_experiments.json", json.dumps(results, indent=2) + "\n")
    text = render_markdown(results)
    write_atomic(args.out / "book_experiments.md", text)
    print(text)
    return results


if __name__ == "__main__":
    main()
