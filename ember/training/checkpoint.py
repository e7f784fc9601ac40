"""The CLI's checkpoint: one run-state dictionary, written and read only here.

A checkpoint holds everything a resumed run needs to continue bit for bit: the
model, optimizer, loader order, RNG, AMP scaler, lr schedule and the history so
far, plus the model's name so a checkpoint is never loaded into another model.
Its keys are spelled once, in :func:`save_run_state` and :func:`restore_run_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ember as em

CHECKPOINT_NAME = "checkpoint.npz"
REQUIRED_KEYS = ("model", "optimizer", "loader", "rng", "epoch", "history")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from: unreadable, incomplete, or from another run's settings."""


@dataclass
class RunParts:
    """The live objects a checkpoint saves and restores."""

    model: Any
    optimizer: Any
    loader: Any
    scaler: Any = None
    scheduler: Any = None


def save_run_state(path: Path, parts: RunParts, *, model_name: str, lr_schedule: str, epoch: int,
                   history: list) -> None:
    """Atomically write the run state after ``epoch`` (``em.save``: temp file + rename)."""
    em.save({
        "model_name": model_name,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "loader": parts.loader.state_dict(),
        "rng": em.get_rng_state(),
        "epoch": epoch,
        "history": history,
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "lr_schedule": lr_schedule,
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
    }, path)


def read_run_state(path: Path, *, model_name: str, lr_schedule: str) -> dict:
    """Load and check a checkpoint before any data is read.

    Raises:
        CheckpointError: missing, unreadable (corrupt, not an ember checkpoint), lacking a key,
            or written by a run with another ``--model`` or ``--lr-schedule``; one line naming ``path``.
    """
    if not path.exists():
        raise CheckpointError(f"--resume given but {path} does not exist")
    try:
        state = em.load(path)
    except (ValueError, OSError) as e:
        detail = str(e).replace(f"load: {str(path)!r} ", "")
        raise CheckpointError(f"--resume: cannot read {path}: {detail}") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"--resume: {path} is an ember file but not a training checkpoint "
                              f"(missing {', '.join(missing)})")
    saved_model = state.get("model_name")
    if saved_model is not None and saved_model != model_name:
        raise CheckpointError(f"--resume: {path} was trained with --model {saved_model}, not {model_name}")
    saved_schedule = state.get("lr_schedule", "none")
    if saved_schedule != lr_schedule:
        raise CheckpointError(f"{path} was trained with --lr-schedule {saved_schedule}, not {lr_schedule}")
    return state


def restore_run_state(path: Path, state: dict, parts: RunParts) -> tuple[int, list]:
    """Load ``state`` (from :func:`read_run_state`) into ``parts``; returns (last epoch, history).

    Raises:
        CheckpointError: the saved tensors do not fit the model or optimizer (another architecture).
    """
    try:
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.loader.load_state_dict(state["loader"])
        em.set_rng_state(state["rng"])
        if parts.scaler is not None and state.get("scaler"):
            parts.scaler.load_state_dict(state["scaler"])
        if parts.scheduler is not None:  # its step size / period come back from the checkpoint too
            parts.scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"--resume: {path} does not fit this run's model ({first})") from None
    return int(state["epoch"]), list(state["history"])
