"""``python -m ember.train``'s main: validate, choose data, build, (resume,) train, save, report.

Exit codes: 0 done, 2 a usage mistake (bad flag, missing data, unusable checkpoint or run
folder; one ``error:`` line), 3 the loss became NaN/inf (the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import ember as em
from ember.autograd.capture import CaptureError
from ember.data import DataLoader, DatasetError
from ember.models import build_model
from ember.training.announce import announce_kernel_compilation
from ember.training.artifacts import plot_filters, plot_history, save_history
from ember.training.checkpoint import (CHECKPOINT_NAME, CheckpointError, RunParts, read_run_state,
                                       restore_run_state, save_run_state)
from ember.training.datasets import choose_dataset, load_data
from ember.training import parallel
from ember.training.loop import NonFiniteLossError, evaluate_in_precision, make_train_step, train_epoch
from ember.training.options import (LR_SCHEDULES, OPTIMIZERS, UsageError, apply_dataset_defaults, default_lr,
                                    env_data_hint, parse_args, parse_init)
from ember.training.run_folder import RunFolder, RunFolderError


def cli_data_error(message: str) -> str:
    """A data-not-found message with the fix spelled in flags rather than Python arguments."""
    message = message.replace("download=False, so nothing was downloaded.",
                              "nothing was downloaded (add --download to fetch it into ~/.cache/ember).")
    return message.replace("Fix: put the files in one of these directories, set $EMBER_DATA, "
                           "or pass root=... or download=True with network access.",
                           "Fix: pass --data-dir DIR or set EMBER_DATA=DIR (DIR/<dataset>/*-ubyte.gz), "
                           "or add --download.")


def _first_conv_weight(model: Any) -> Any:
    for m in model.modules():
        if isinstance(m, em.nn.Conv2d):
            return m.weight.numpy().copy()
    return None


def _previous_steps(path: Path, last_epoch: int) -> list:
    """The per-step losses of the epochs a resumed run keeps (from its history.json, if readable)."""
    import json

    try:
        steps = json.loads(path.read_text()).get("steps", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in steps if isinstance(s, list) and len(s) == 2 and s[0] <= last_epoch]


def _setup(args: argparse.Namespace) -> tuple:
    """Everything that can fail on the user's input, before a single image is read."""
    name, reason = choose_dataset(args.dataset, args.data_dir, args.download)
    apply_dataset_defaults(args, name)
    folder = RunFolder(Path(args.out or f"runs/{args.model}-{name}"), resume=args.resume, force=args.force)
    state = None
    if args.resume:
        state = read_run_state(folder.path / CHECKPOINT_NAME, model_name=args.model, lr_schedule=args.lr_schedule)
    return name, reason, folder, state


def main(argv: Sequence[str] | None = None, on_setup: Callable[..., None] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    ``on_setup``, when given, is called once before the first epoch as
    ``on_setup(model=, optimizer=, loader=, data=, dtype=, start_epoch=)``, so a
    benchmark can read the initial weights and the loader's state (its batch
    order) of exactly the run the CLI performs.
    """
    launch = parallel.Launch(rank=parallel.env_rank())  # until the group exists: who prints errors
    try:
        args = parse_args(argv)
        launch = parallel.start(args)
        name, reason, folder, state = _setup(args)
    except (UsageError, RunFolderError, CheckpointError, ValueError) as e:
        launch.error(cli_data_error(str(e)) if isinstance(e, DatasetError) else str(e))
        return 2
    try:
        return _run(args, launch, name, reason, folder, state, on_setup)
    finally:
        parallel.finish()


def _run(args: argparse.Namespace, launch: parallel.Launch, name: str, reason: str, folder: RunFolder,
         state: Any, on_setup: Callable[..., None] | None) -> int:
    """Everything after the flags were accepted: load, build, (resume,) train, report."""
    em.manual_seed(args.seed + launch.rank)  # ranks draw their own dropout masks; DDP syncs the weights
    try:
        data = load_data(name, args.data_dir, args.max_train, args.max_test, seed=args.seed, download=args.download)
    except DatasetError as e:  # found, but unreadable (truncated or corrupt IDX file)
        launch.error(cli_data_error(str(e)))
        return 2
    hint = f"; {env_data_hint()}" if name == "digits" and args.dataset == "auto" else ""
    ranks = f"; {launch.world} ranks" if launch.world > 1 else ""
    launch.say(f"dataset: {name} ({reason}{hint}); {len(data.train)} train / {len(data.test)} test images "
               f"of shape {data.input_dim}{ranks}")
    init = parse_init(args.init, args.model)
    try:
        model = build_model(args.model, data.input_dim, data.num_classes,
                            **({} if init is None else {"weight_init_std": init}))
    except ValueError as e:  # e.g. a network too deep for 8x8 images
        launch.error(f"--model {args.model} on {name}: {e}")
        return 2
    dtype = em.float64 if args.dtype == "float64" else em.float32
    scaler = em.amp.GradScaler() if args.dtype == "float16" else None  # AMP: the model stays float32
    model.to(args.device).to(dtype)
    cls, _, extra = OPTIMIZERS[args.optimizer]
    lr = args.lr if args.lr is not None else default_lr(args.optimizer)
    optimizer = cls(model.parameters(), lr=lr, weight_decay=args.weight_decay, **extra)
    loader, sampler = parallel.shard(data.train, args.batch_size, args.seed, launch)
    make_scheduler = LR_SCHEDULES[args.lr_schedule]
    scheduler = make_scheduler(optimizer, args.epochs) if make_scheduler else None
    parts = RunParts(model, optimizer, loader, scaler, scheduler)
    history: dict = {"args": vars(args), "dataset": name, "epochs": [], "steps": []}
    ckpt_path = folder.path / CHECKPOINT_NAME
    start_epoch = 1
    if state is not None:
        try:
            last, history["epochs"] = restore_run_state(ckpt_path, state, parts)
        except CheckpointError as e:
            launch.error(str(e))
            return 2
        start_epoch = last + 1
        history["steps"] = _previous_steps(folder.path / "history.json", last)
        launch.say(f"resumed from {ckpt_path} after epoch {last}")
        if args.lr is not None:  # an explicit --lr overrides the checkpoint's, as a user changing it expects
            for group in optimizer.param_groups:
                group["lr"] = args.lr
    if launch.is_main and args.plot_filters and start_epoch == 1 and _first_conv_weight(model) is not None:
        plot_filters(folder.file("filters_before.png"), _first_conv_weight(model),
                     f"{args.model} conv1, before training")
    if on_setup is not None:
        on_setup(model=model, optimizer=optimizer, loader=loader, data=data, dtype=dtype, start_epoch=start_epoch)
    trained = parallel.wrap(model, launch)
    step = None  # the eager step train_epoch makes, which checks the loss before the update
    if args.compile or trained is not model:
        step = make_train_step(trained, optimizer, scaler, compiled=args.compile)
    code = _train(args, name, data, parts, dtype, history, folder, start_epoch, launch, step, sampler)
    if code or not launch.is_main:
        return code
    if args.plot_filters and _first_conv_weight(model) is not None:
        plot_filters(folder.file("filters_after.png"), _first_conv_weight(model), f"{args.model} conv1, after training")
    final = history["epochs"][-1] if history["epochs"] else None
    if final:
        print(f"final test accuracy {final['test_accuracy']:.4f}; run folder {folder.path} "
              f"({', '.join(folder.written)})")
    return 0


def _train(args: argparse.Namespace, name: str, data: Any, parts: RunParts, dtype: Any, history: dict,
           folder: RunFolder, start_epoch: int, launch: parallel.Launch, step: Any, sampler: Any) -> int:
    """The epochs: train, evaluate, step the schedule, save checkpoint/history/plot; 3 on a NaN loss."""
    from tqdm import tqdm

    disable = {"auto": None, "on": False, "off": True}[args.progress]  # None: tqdm decides (a terminal or not)
    if not launch.is_main:
        disable = True
    ckpt_path = folder.path / CHECKPOINT_NAME
    steps: list = history["steps"]
    if launch.is_main:
        announce_kernel_compilation()
    for epoch in range(start_epoch, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        with tqdm(total=len(parts.loader), desc=f"epoch {epoch}/{args.epochs}", unit="batch", disable=disable,
                  leave=False) as bar:
            try:
                train = train_epoch(parts.model, parts.loader, parts.optimizer, epoch, args.device, dtype,
                                    progress=bar, scaler=parts.scaler, step_losses=steps, step=step)
            except CaptureError as e:  # --compile on a step a CUDA graph cannot hold
                print(f"error: --compile: {e}", file=sys.stderr)
                return 2
            except NonFiniteLossError as e:
                kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved yet"
                where = f"rank {launch.rank}: " if launch.world > 1 else ""
                print(f"error: {where}{e}; stopping ({kept})", file=sys.stderr)
                if launch.world > 1:
                    from ember import distributed

                    distributed.abort(f"stopping: {e}")
                return 3
        train = parallel.combine(train, launch)
        if parts.scheduler is not None and not launch.is_main:
            parts.scheduler.step()
        if not launch.is_main:
            continue
        test = evaluate_in_precision(parts.model, data.test, args.device, dtype, args.eval_dtype,
                                     amp=parts.scaler is not None)
        lr = parts.optimizer.param_groups[0]["lr"]
        if parts.scheduler is not None:
            parts.scheduler.step()
        history["epochs"].append({"epoch": epoch, "lr": lr, "train_loss": train["loss"],
                                  "train_accuracy": train["accuracy"], "test_loss": test["loss"],
                                  "test_accuracy": test["accuracy"], "samples_per_s": train["samples_per_s"],
                                  "seconds": train["seconds"]})
        print(f"epoch {epoch}/{args.epochs}  train loss {train['loss']:.4f} acc {train['accuracy']:.4f}  "
              f"test loss {test['loss']:.4f} acc {test['accuracy']:.4f}  "
              f"({train['samples_per_s']:.0f} samples/s, {train['seconds']:.1f} s)")
        save_run_state(folder.file(CHECKPOINT_NAME), parts, model_name=args.model, lr_schedule=args.lr_schedule,
                       epoch=epoch, history=history["epochs"])
        save_history(folder.file("history.json"), history)
        if not args.no_plot:
            title = (f"{args.model} on {name}, {args.optimizer} lr {history['epochs'][0]['lr']:g}: "
                     f"test accuracy {test['accuracy']:.4f}")
            plot_history(folder.file("curves.png"), history["epochs"], title, steps=steps,
                         steps_per_epoch=len(parts.loader))
    return 0
