"""The book's bit-reduction experiment (ch. 8), and float16 mixed-precision training, on the CPU.

1. Train SimpleConvNet in float32 on Fashion-MNIST (He init, Adam, full data).
2. Evaluate the same weights on the test set six ways:
   float64 and float32 (converted copies); the book's way, weights and inputs
   rounded to float16 but the arithmetic in float32 or float64
   (``ember.amp.rounded_copy``); true float16 arithmetic (``.half()``, inputs
   float16; softmax/loss still accumulate in float32); and float32 weights under
   ``ember.amp.autocast`` (float16 matmul/conv, float32 loss).  For each: accuracy,
   loss, the largest logit deviation from float64, predictions that differ
   from float32's, and the evaluation time.
3. Train twice more on a subset, float32 and AMP (``autocast`` + ``GradScaler``,
   float32 master weights), same seed and batch order; compare test accuracy,
   time per sample and the loss scaler's skipped steps.  A subset because NumPy
   has no float16 BLAS: its float16 matmul runs ~100x slower than float32 on the
   CPU, so AMP here measures correctness, not speed (the GPU is where it pays).

Run from the repository root (EMBER_DATA must point at the folder holding fashion-mnist/)::

    python -m benchmarks.bit_reduction                   # ~15 min on 2 busy cores
    python -m benchmarks.bit_reduction --quick           # a smoke run on small subsets

Results: ``benchmarks/results/bit_reduction.{json,md,png}`` (written atomically).
Timings on the shared 2-core machine are noisy (other jobs run alongside);
the load average at the start and end is recorded with them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make `import ember` find the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy

import ember as em
from ember.data import DataLoader, TensorDataset
from ember.models import SimpleConvNet
from ember.nn import functional as F
from ember.training.artifacts import atomic_write
from ember.training.datasets import load_data

RESULTS = Path(__file__).resolve().parent / "results"


def train(model: Any, dataset: TensorDataset, epochs: int, seed: int, batch_size: int, amp: bool) -> dict:
    """Adam(1e-3) for ``epochs`` passes; with ``amp``, autocast + GradScaler. Returns time and scaler stats."""
    optimizer = em.optim.Adam(model.parameters(), lr=0.001)
    scaler = em.amp.GradScaler(enabled=amp)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
    skipped = steps = 0
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            with em.amp.autocast(enabled=amp):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            with numpy.errstate(over="ignore", invalid="ignore"):  # overflow is the scaler's to handle
                scaler.scale(loss).backward()
            before = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            steps += 1
            skipped += int(scaler.get_scale() < before)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "samples_per_s": epochs * len(dataset) / seconds, "steps": steps,
            "skipped_steps": skipped, "final_scale": scaler.get_scale() if amp else None,
            "final_loss": float(loss.item())}


def logits_of(model: Any, x: numpy.ndarray, dtype: Any, autocast: bool = False, batch: int = 500) -> tuple:
    """The model's logits on ``x`` fed as ``dtype`` (float64 host array), and the seconds it took."""
    model.eval()
    out = []
    start = time.perf_counter()
    with em.no_grad(), em.amp.autocast(enabled=autocast):
        for i in range(0, len(x), batch):
            out.append(model(em.tensor(x[i:i + batch], dtype=dtype)).numpy().astype(numpy.float64))
    return numpy.concatenate(out), time.perf_counter() - start


def metrics(logits: numpy.ndarray, labels: numpy.ndarray) -> dict:
    """Accuracy and mean cross-entropy, computed in float64 from the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    return {"accuracy": float((logits.argmax(axis=1) == labels).mean()),
            "loss": float(-logp[numpy.arange(len(labels)), labels].mean())}


def evaluation_modes(model: Any) -> list[tuple[str, str, Callable[[], Any], Any, bool]]:
    """(key, description, model factory, input dtype, autocast) for each way of evaluating ``model``."""
    half_values = lambda m: em.amp.rounded_copy(m, em.float16)  # noqa: E731
    return [
        ("float64", "float64 weights, inputs and arithmetic", lambda: em.amp.converted_copy(model, em.float64),
         em.float64, False),
        ("float32", "float32 (as trained)", lambda: model, em.float32, False),
        ("book_f16_in_f32", "book: weights+inputs rounded to float16, arithmetic in float32",
         lambda: half_values(model), "f16->f32", False),
        ("book_f16_in_f64", "book: weights+inputs rounded to float16, arithmetic in float64",
         lambda: em.amp.converted_copy(half_values(model), em.float64), "f16->f64", False),
        ("float16", "true float16 arithmetic (.half(); softmax/loss accumulate in float32)",
         lambda: em.amp.converted_copy(model, em.float16), em.float16, False),
        ("autocast", "float32 weights under amp.autocast (float16 matmul/conv, float32 loss)",
         lambda: model, em.float32, True),
    ]


def evaluate_all(model: Any, x: numpy.ndarray, labels: numpy.ndarray) -> dict:
    """Every evaluation mode of ``evaluation_modes`` on the same weights, compared with float64 and float32."""
    rows: dict = {}
    ref64 = pred32 = None
    for key, desc, make, dtype, autocast in evaluation_modes(model):
        m = make()
        if dtype in ("f16->f32", "f16->f64"):  # the book rounds the inputs to float16 too
            xin, dtype = x.astype(numpy.float16).astype(numpy.float64), em.float32 if dtype == "f16->f32" else em.float64
        else:
            xin = x
        logits, seconds = logits_of(m, xin, dtype, autocast)
        row = {"description": desc, **metrics(logits, labels), "eval_seconds": seconds}
        if key == "float64":
            ref64 = logits
        if key == "float32":
            pred32 = logits.argmax(axis=1)
        row["max_abs_logit_diff_vs_float64"] = float(numpy.abs(logits - ref64).max())
        row["predictions_differing_from_float32"] = None if pred32 is None else int((logits.argmax(1) != pred32).sum())
        rows[key] = row
        print(f"  {key:16s} acc {row['accuracy']:.4f}  loss {row['loss']:.4f}  "
              f"max|dlogit| {row['max_abs_logit_diff_vs_float64']:.2e}  ({seconds:.1f} s)", flush=True)
    rows["float64"]["predictions_differing_from_float32"] = int((ref64.argmax(1) != pred32).sum())
    return rows


def machine() -> dict:
    """Where and with what the numbers were taken."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": numpy.__version__, "ember": em.__version__,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _loads(values: list | None) -> str:
    """Load averages as ``a / b / c`` with one decimal."""
    return "n/a" if not values else " / ".join(f"{v:.1f}" for v in values)


def markdown(doc: dict) -> str:
    """The results as the tables of bit_reduction.md."""
    a = doc["args"]
    lines = [
        "# Bit reduction (the book's ch. 8 experiment) and AMP training, CPU",
        "",
        f"Finished {doc['date']} on {doc['machine']['cpu_count']} shared CPU cores (load average "
        f"{_loads(doc['machine']['load_average'])} at start, {_loads(doc['load_average_end'])} at end: other jobs "
        "ran alongside, "
        "so times are noisy). Command: `" + doc["command"] + "`.",
        "",
        f"## Same weights, six precisions ({doc['train']['images']} training images x {a['epochs']} epoch(s) in "
        f"float32, He init, Adam 1e-3; {doc['test_images']} test images)",
        "",
        f"float32 training took {doc['train']['seconds']:.0f} s ({doc['train']['samples_per_s']:.0f} samples/s).",
        "",
        "| evaluation | accuracy | loss | max abs logit diff vs float64 | predictions != float32 | eval s |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in doc["evaluation"].items():
        lines.append(f"| {r['description']} | {r['accuracy']:.4f} | {r['loss']:.4f} | "
                     f"{r['max_abs_logit_diff_vs_float64']:.2e} | {r['predictions_differing_from_float32']} | "
                     f"{r['eval_seconds']:.1f} |")
    t = doc["amp"]
    lines += [
        "",
        f"## Training in float32 vs AMP ({t['images']} training images x {a['epochs']} epoch(s), same seed and "
        f"batch order; test accuracy of the float32 master weights on {doc['test_images']} images)",
        "",
        "| training | test accuracy | final train loss | samples/s | steps | skipped steps | final loss scale |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("float32", "amp"):
        r = t[key]
        lines.append(f"| {key} | {r['test_accuracy']:.4f} | {r['final_loss']:.4f} | {r['samples_per_s']:.0f} | "
                     f"{r['steps']} | {r['skipped_steps']} | {r['final_scale']} |")
    lines += ["", "AMP on the CPU is slow by construction: NumPy has no float16 BLAS, so every float16 "
              "matmul/conv runs in NumPy's generic loop (~0.08 GMAC/s here, vs ~10 GMAC/s for float32). "
              "It checks correctness; speed needs the GPU's tensor cores.", ""]
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    """Accuracy per evaluation precision, and float32 vs AMP training, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = doc["evaluation"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1.3]})
    keys = list(ev)
    acc = [100 * ev[k]["accuracy"] for k in keys]
    bars = ax1.bar(range(len(keys)), acc, color=["#4c72b0", "#4c72b0", "#dd8452", "#dd8452", "#c44e52", "#55a868"])
    ax1.set_xticks(range(len(keys)), [k.replace("_", "\n") for k in keys], fontsize=8)
    lo = min(acc)
    ax1.set_ylim(lo - 2, max(acc) + 1)
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("same float32-trained weights, evaluated at each precision")
    for b, v in zip(bars, acc):
        ax1.text(b.get_x() + b.get_width() / 2, v + 0.05, f"{v:.2f}", ha="center", fontsize=8)
    amp = doc["amp"]
    acc2 = [100 * amp[k]["test_accuracy"] for k in ("float32", "amp")]
    bars2 = ax2.bar([0, 1], acc2, color=["#4c72b0", "#55a868"])
    ax2.set_xticks([0, 1], ["float32\ntraining", "AMP\ntraining"])
    ax2.set_ylim(min(acc2) - 3, max(acc2) + 1.5)
    ax2.set_title(f"training on {amp['images']} images")
    for b, v, k in zip(bars2, acc2, ("float32", "amp")):
        ax2.text(b.get_x() + b.get_width() / 2, v + 0.1, f"{v:.2f}%\n{amp[k]['samples_per_s']:.0f}/s",
                 ha="center", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the experiment and write the results; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-train", type=int, default=None, help="training images for step 1 (default: all 60,000)")
    p.add_argument("--amp-train", type=int, default=5000, help="training images for the float32-vs-AMP runs")
    p.add_argument("--max-test", type=int, default=None, help="test images (default: all 10,000)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--quick", action="store_true", help="smoke run: 2,000 / 500 training and 500 test images")
    args = p.parse_args(argv)
    if args.quick:
        args.max_train, args.amp_train, args.max_test = 2000, 500, 500
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    data = load_data("fashion-mnist", args.data_dir, args.max_train, args.max_test, seed=args.seed)
    x_test, y_test = data.test.arrays()
    x_test = numpy.asarray(x_test, dtype=numpy.float64)
    print(f"fashion-mnist: {len(data.train)} train / {len(x_test)} test images", flush=True)

    em.manual_seed(args.seed)
    model = SimpleConvNet(weight_init_std="he")
    info = train(model, data.train, args.epochs, args.seed, args.batch_size, amp=False)
    print(f"trained float32 in {info['seconds']:.1f} s", flush=True)
    evaluation = evaluate_all(model, x_test, y_test)

    x_tr, y_tr = data.train.arrays()
    n = min(args.amp_train, len(x_tr))
    subset = TensorDataset(x_tr[:n], y_tr[:n])
    amp_rows = {"images": n}
    for key, amp in (("float32", False), ("amp", True)):
        em.manual_seed(args.seed)
        m = SimpleConvNet(weight_init_std="he")
        row = train(m, subset, args.epochs, args.seed, args.batch_size, amp=amp)
        logits, _ = logits_of(m, x_test, em.float32)
        row["test_accuracy"] = metrics(logits, y_test)["accuracy"]
        amp_rows[key] = row
        print(f"  {key} training on {n}: test acc {row['test_accuracy']:.4f}, {row['samples_per_s']:.0f} "
              f"samples/s, skipped {row['skipped_steps']}/{row['steps']} steps", flush=True)

    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks.bit_reduction", *(argv if argv is not None else sys.argv[1:])]),
        "args": vars(args), "machine": {**machine(), "load_average": load_start},
        "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "train": {"images": len(data.train), **info}, "test_images": len(x_test),
        "evaluation": evaluation, "amp": amp_rows,
    }
    out = Path(args.out)
    atomic_write(out / "bit_reduction.json", lambda f: f.write(json.dumps(doc, indent=2)), mode="w")
    atomic_write(out / "bit_reduction.md", lambda f: f.write(markdown(doc)), mode="w")
    plot(doc, out / "bit_reduction.png")
    print(f"wrote {out / 'bit_reduction.json'}, .md, .png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
