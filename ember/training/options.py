"""The CLI's flags: parsing, per-dataset defaults, and validation before any data is read.

Every mistake a user can make on the command line is caught here and reported as
one ``error: ...`` line (a :class:`UsageError`), so the CLI never prints a
traceback for a bad flag and never loads data only to reject a flag afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ember import optim
from ember.models import MODELS
from ember.training.datasets import DATASETS

PROG = "python -m ember.train"

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

# Defaults that depend on the dataset: the book's settings for the 28x28 sets, and settings that
# make the tiny 8x8 digits (1437 training images) converge: He init, more epochs, smaller batches.
DEFAULTS = {"epochs": 3, "batch_size": 100, "init": None}
DIGITS_DEFAULTS = {"epochs": 15, "batch_size": 50, "init": "he"}
DIGITS_ADAM_LR = 0.003
INIT_NAMES = ("he", "relu", "kaiming", "xavier", "glorot", "sigmoid", "default")
BOOK_INIT_FREE_MODELS = ("keras_mlp", "keras_cnn")

EPILOG = """\
data: MNIST and Fashion-MNIST are read as IDX files (train-images-idx3-ubyte.gz, ...) from,
in order: --data-dir, $EMBER_DATA, ~/.cache/ember, /usr/share/datasets; each as <dir>/<name>/
or <dir>/ itself (<name> is mnist or fashion-mnist). --download fetches missing files into
~/.cache/ember (checksum-verified). Without either, scikit-learn's bundled 8x8 digits are used.
"""


class UsageError(Exception):
    """A command-line mistake: the CLI prints ``error: <message>`` and exits with code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake raises UsageError (one line, no usage dump) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    """Every flag with its help text and default."""
    p = _Parser(prog=PROG, description="Train one of the book's networks and report its test accuracy.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="simple_convnet", choices=sorted(MODELS), metavar="NAME",
                   help=f"network to train: {', '.join(sorted(MODELS))} (default: simple_convnet)")
    p.add_argument("--dataset", default="auto", choices=("auto",) + DATASETS,
                   help="auto picks the first found: mnist, fashion-mnist, then digits (default: auto)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder searched first for the IDX files (default: $EMBER_DATA, then ~/.cache/ember)")
    p.add_argument("--download", action="store_true",
                   help="download a missing MNIST/Fashion-MNIST into ~/.cache/ember (default: never download)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help=f"passes over the training set (default: {DEFAULTS['epochs']}; "
                        f"{DIGITS_DEFAULTS['epochs']} on digits)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help=f"images per step (default: {DEFAULTS['batch_size']}; {DIGITS_DEFAULTS['batch_size']} on digits)")
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), metavar="NAME",
                   help=f"one of {', '.join(sorted(OPTIMIZERS))} (default: adam)")
    p.add_argument("--lr", type=float, default=None, metavar="X",
                   help="learning rate (default: the optimizer's: " + ", ".join(
                       f"{k} {v[1]:g}" for k, v in OPTIMIZERS.items()) + f"; adam {DIGITS_ADAM_LR:g} on digits)")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="X", help="optimizer L2 weight decay (default: 0)")
    p.add_argument("--lr-schedule", default="none", choices=tuple(LR_SCHEDULES),
                   help="per-epoch lr schedule: step (x0.1 every epochs/3) or cosine (to 0 over --epochs) "
                        "(default: none)")
    p.add_argument("--init", default=None, metavar="STD|NAME",
                   help="weight init: a std such as 0.01, or one of " + ", ".join(INIT_NAMES)
                        + " (default: the model's own, the book's 0.01 for most; he on digits)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"),
                   help="float16: mixed precision (AMP) - float32 master weights, autocast, loss scaling "
                        "(default: float32)")
    p.add_argument("--eval-dtype", default=None, choices=("float16", "float32", "float64"),
                   help="evaluate a copy of the weights in this precision (default: as trained)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of weights, shuffling and subsets (default: 0)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/<model>-<dataset>)")
    p.add_argument("--max-train", type=int, default=None, metavar="N",
                   help="train on a random subset of N images (default: all)")
    p.add_argument("--max-test", type=int, default=None, metavar="N",
                   help="evaluate on a random subset of N images (default: all)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint (default: off)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing run in the run folder (default: refuse to overwrite)")
    p.add_argument("--plot-filters", action="store_true",
                   help="save conv1 filters before/after training (default: off)")
    p.add_argument("--no-plot", action="store_true", help="skip the loss/accuracy PNG (default: plot)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="tqdm progress bar (default: auto, only on a terminal)")
    p.add_argument("--compile", action="store_true",
                   help="capture the training step once and replay it (ember.compile; default: eager)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpiexec -n N python -m mpi4py -m ember.train` "
                        "(--batch-size is the global batch; default: one process)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and validate ``argv``; raises UsageError naming the flag for any bad value."""
    args = build_parser().parse_args(argv)
    validate(args)
    return args


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


def _finite_at_least(flag: str, value: float | None, low: float, strict: bool = False) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or (value <= low if strict else value < low)
    if bad:
        _fail(f"{flag} must be a finite number {'>' if strict else '>='} {low:g}, got {value:g}")


def _positive_int(flag: str, value: int | None) -> None:
    if value is not None and value <= 0:
        _fail(f"{flag} must be a positive integer, got {value}")


def parse_init(text: str | None, model: str) -> Any:
    """``--init``'s value as the models' ``weight_init_std`` (a positive float or a name), or None."""
    if text is None:
        return None
    if model in BOOK_INIT_FREE_MODELS:
        _fail(f"--init is not supported for --model {model} (it always uses Keras' Glorot init)")
    try:
        std = float(text)
    except ValueError:
        if text.lower() not in INIT_NAMES:
            _fail(f"--init must be a positive number or one of {', '.join(INIT_NAMES)}, got {text!r}")
        return text.lower()
    if not math.isfinite(std) or std <= 0:
        _fail(f"--init must be a positive number or one of {', '.join(INIT_NAMES)}, got {text!r}")
    return std


def _check_device(text: str) -> None:
    import ember as em

    try:
        dev = em.device(text)
    except (ValueError, TypeError) as e:
        _fail(f"--device must be cpu or cuda[:N], got {text!r} ({e})")
    if dev.type == "cuda":
        from ember.cuda import install_hint, is_available

        if not is_available():
            _fail(f"--device {text}: {install_hint()}")


def validate(args: argparse.Namespace) -> None:
    """Check every flag's value (ranges, finiteness, files and folders) without loading data."""
    _positive_int("--epochs", args.epochs)
    _positive_int("--batch-size", args.batch_size)
    _positive_int("--max-train", args.max_train)
    _positive_int("--max-test", args.max_test)
    _finite_at_least("--lr", args.lr, 0.0)
    _finite_at_least("--weight-decay", args.weight_decay, 0.0)
    if args.seed < 0:
        _fail(f"--seed must be a non-negative integer, got {args.seed}")
    parse_init(args.init, args.model)
    if args.data_dir is not None:
        if not Path(args.data_dir).expanduser().is_dir():
            _fail(f"--data-dir {args.data_dir}: no such folder")
        if args.dataset == "digits":
            _fail("--data-dir has no effect with --dataset digits (the digits ship with scikit-learn)")
    if args.download and args.dataset in ("auto", "digits"):
        _fail("--download needs --dataset mnist or --dataset fashion-mnist (which one to fetch)")
    if args.compile and args.distributed:
        _fail("--compile and --distributed do not work together yet (a captured step cannot run "
              "DistributedDataParallel's gradient hooks); pick one")
    if args.resume and args.force:
        _fail("--resume and --force contradict each other: --resume continues the run, --force replaces it")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        _fail(f"--out {args.out}: exists and is not a folder")
    _check_device(args.device)


def apply_dataset_defaults(args: argparse.Namespace, dataset: str) -> None:
    """Fill the flags left unset with the defaults for ``dataset`` (see DEFAULTS / DIGITS_DEFAULTS)."""
    defaults = DIGITS_DEFAULTS if dataset == "digits" else DEFAULTS
    for key, value in defaults.items():
        if key == "init" and args.model in BOOK_INIT_FREE_MODELS:
            continue  # these models have their own init and refuse --init
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.lr is None and dataset == "digits" and args.optimizer == "adam":
        args.lr = DIGITS_ADAM_LR


def default_lr(optimizer: str) -> float:
    """The learning rate used when --lr is not given (and no dataset default applies)."""
    return OPTIMIZERS[optimizer][1]


def env_data_hint() -> str:
    """How a user gets MNIST or Fashion-MNIST, in flags (shown when the CLI falls back to digits)."""
    where = os.environ.get("EMBER_DATA")
    base = "for Fashion-MNIST or MNIST add --dataset fashion-mnist --download, or --data-dir DIR / EMBER_DATA=DIR"
    return base + (f" (EMBER_DATA={where} holds neither)" if where else "")
