"""``python -m ember.train``: train one of the book's networks and report test accuracy.

With no flags it trains SimpleConvNet on the first dataset found offline
(MNIST, then Fashion-MNIST, then scikit-learn's digits) and says which and why.
Each epoch prints train/test loss and accuracy; the run folder receives a
checkpoint (``checkpoint.npz``), ``history.json``, ``curves.png`` and, with
``--plot-filters``, the first conv layer's filters before and after training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import ember as em
from ember import optim
from ember.data import DataLoader, DatasetError
from ember.models import MODELS, build_model
from ember.training.artifacts import plot_filters, plot_history, save_history
from ember.training.datasets import DATASETS, load_data
from ember.training.loop import NonFiniteLossError, evaluate_in_precision, train_epoch

OPTIMIZERS = {
    "sgd": (optim.SGD, 0.1, {}),
    "momentum": (optim.SGD, 0.01, {"momentum": 0.9}),
    "nesterov": (optim.SGD, 0.01, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (optim.Adagrad, 0.01, {}),
    "rmsprop": (optim.RMSprop, 0.001, {}),
    "adadelta": (optim.Adadelta, 1.0, {}),
    "adam": (optim.Adam, 0.001, {}),
    "adamw": (optim.AdamW, 0.001, {}),
}


LR_SCHEDULES = {
    "none": None,
    "step": lambda opt, epochs: optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
    "cosine": lambda opt, epochs: optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The CLI's flags; unknown model/optimizer/dataset names list the valid choices."""
    p = argparse.ArgumentParser(prog="python -m ember.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="simple_convnet", choices=sorted(MODELS), metavar="NAME",
                   help=f"network to train: {', '.join(sorted(MODELS))} (default simple_convnet)")
    p.add_argument("--dataset", default="auto", choices=("auto",) + DATASETS,
                   help="auto picks the first available: mnist, fashion-mnist, digits")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), metavar="NAME",
                   help=f"one of {', '.join(sorted(OPTIMIZERS))} (default adam)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: per optimizer)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="optimizer L2 weight decay")
    p.add_argument("--lr-schedule", default="none", choices=tuple(LR_SCHEDULES),
                   help="per-epoch lr schedule: step (x0.1 every epochs/3) or cosine (to 0 over --epochs)")
    p.add_argument("--init", default=None,
                   help="weight init: a std such as 0.01 (the book's), 'he', 'xavier' or 'default' (PyTorch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"),
                   help="float16: mixed precision (AMP) - float32 master weights, autocast, loss scaling")
    p.add_argument("--eval-dtype", default=None, choices=("float16", "float32", "float64"),
                   help="evaluate a copy of the weights in this precision (default: as trained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder searched first for the IDX files")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<dataset>)")
    p.add_argument("--max-train", type=int, default=None, help="train on a random subset of N images")
    p.add_argument("--max-test", type=int, default=None, help="evaluate on a random subset of N images")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--plot-filters", action="store_true", help="save conv1 filters before/after training")
    p.add_argument("--no-plot", action="store_true", help="skip the loss/accuracy PNG")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="tqdm progress bar (auto: only on a terminal)")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def _model_kwargs(args: argparse.Namespace) -> dict:
    if args.init is None:
        return {}
    try:
        init: Any = float(args.init)
    except ValueError:
        init = args.init
    if args.model in ("keras_mlp", "keras_cnn"):
        raise SystemExit(f"--init is not supported for {args.model} (it always uses Keras' Glorot init)")
    return {"weight_init_std": init}


def _first_conv_weight(model: Any) -> Any:
    for m in model.modules():
        if isinstance(m, em.nn.Conv2d):
            return m.weight.numpy().copy()
    return None


def main(argv: Sequence[str] | None = None, on_setup: Callable[..., None] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    ``on_setup``, when given, is called once before the first epoch as
    ``on_setup(model=, optimizer=, loader=, data=, dtype=, start_epoch=)``, so a
    benchmark can read the initial weights and the loader's state (its batch
    order) of exactly the run the CLI performs.
    """
    args = parse_args(argv)
    em.manual_seed(args.seed)
    try:
        data = load_data(args.dataset, args.data_dir, args.max_train, args.max_test, seed=args.seed)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset: {data.name} ({data.reason}); {len(data.train)} train / {len(data.test)} test images "
          f"of shape {data.input_dim}")
    out = Path(args.out or f"runs/{args.model}-{data.name}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    model = build_model(args.model, data.input_dim, data.num_classes, **_model_kwargs(args))
    dtype = em.float64 if args.dtype == "float64" else em.float32
    scaler = em.amp.GradScaler() if args.dtype == "float16" else None  # AMP: the model stays float32
    model.to(args.device).to(dtype)
    cls, default_lr, extra = OPTIMIZERS[args.optimizer]
    optimizer = cls(model.parameters(), lr=args.lr or default_lr, weight_decay=args.weight_decay, **extra)
    loader = DataLoader(data.train, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    make_scheduler = LR_SCHEDULES[args.lr_schedule]
    scheduler = make_scheduler(optimizer, args.epochs) if make_scheduler else None
    history: dict = {"args": vars(args), "dataset": data.name, "epochs": []}
    start_epoch = 1
    if args.resume:
        if not ckpt_path.exists():
            print(f"error: --resume given but {ckpt_path} does not exist", file=sys.stderr)
            return 2
        state = em.load(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        em.set_rng_state(state["rng"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if state.get("lr_schedule", "none") != args.lr_schedule:
            print(f"error: {ckpt_path} was trained with --lr-schedule {state.get('lr_schedule', 'none')}, "
                  f"not {args.lr_schedule}", file=sys.stderr)
            return 2
        if scheduler is not None:  # its step size / period come back from the checkpoint too
            scheduler.load_state_dict(state["scheduler"])
        history["epochs"] = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        print(f"resumed from {ckpt_path} after epoch {start_epoch - 1}")
        if args.lr is not None:  # an explicit --lr overrides the checkpoint's, as a user changing it expects
            for group in optimizer.param_groups:
                group["lr"] = args.lr
    if args.plot_filters and start_epoch == 1 and _first_conv_weight(model) is not None:
        plot_filters(out / "filters_before.png", _first_conv_weight(model), f"{args.model} conv1, before training")
    if on_setup is not None:
        on_setup(model=model, optimizer=optimizer, loader=loader, data=data, dtype=dtype, start_epoch=start_epoch)

    from tqdm import tqdm

    disable = {"auto": None, "on": False, "off": True}[args.progress]
    for epoch in range(start_epoch, args.epochs + 1):
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{args.epochs}", unit="batch", disable=disable,
                  leave=False) as bar:
            try:
                train = train_epoch(model, loader, optimizer, epoch, args.device, dtype, progress=bar, scaler=scaler)
            except NonFiniteLossError as e:
                kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved yet"
                print(f"error: {e}; stopping ({kept})", file=sys.stderr)
                return 3
        test = evaluate_in_precision(model, data.test, args.device, dtype, args.eval_dtype, amp=scaler is not None)
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
                  "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                  "samples_per_s": train["samples_per_s"], "seconds": train["seconds"]}
        history["epochs"].append(record)
        print(f"epoch {epoch}/{args.epochs}  train loss {train['loss']:.4f} acc {train['accuracy']:.4f}  "
              f"test loss {test['loss']:.4f} acc {test['accuracy']:.4f}  "
              f"({train['samples_per_s']:.0f} samples/s, {train['seconds']:.1f} s)")
        em.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "loader": loader.state_dict(),
                 "rng": em.get_rng_state(), "epoch": epoch, "history": history["epochs"],
                 "scaler": scaler.state_dict() if scaler else None,
                 "lr_schedule": args.lr_schedule, "scheduler": scheduler.state_dict() if scheduler else None},
                ckpt_path)
        save_history(out / "history.json", history)
        if not args.no_plot:
            plot_history(out / "curves.png", history["epochs"], f"{args.model} on {data.name}")
    if args.plot_filters and _first_conv_weight(model) is not None:
        plot_filters(out / "filters_after.png", _first_conv_weight(model), f"{args.model} conv1, after training")
    final = history["epochs"][-1] if history["epochs"] else None
    if final:
        print(f"final test accuracy {final['test_accuracy']:.4f}; run folder {out} "
              f"(checkpoint.npz, history.json{'' if args.no_plot else ', curves.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
