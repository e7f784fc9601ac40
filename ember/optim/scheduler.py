"""``LRScheduler``: the base every learning-rate schedule of ``ember.optim.lr_scheduler`` builds on.

A scheduler owns an epoch counter and writes ``group["lr"]`` of every group of
its optimizer, computed in closed form from the group's ``initial_lr`` and the
epoch (see ``ember.optim.lr_scheduler`` for why).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ember.autograd.capture import replayable
from ember.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``lr_at(base_lr, epoch)``.

    Creating a scheduler records each group's ``lr`` as ``initial_lr`` (unless the
    group has one) and sets the lr for epoch 0.

    Args:
        optimizer: the optimizer whose ``param_groups`` get the learning rates.
        last_epoch: the index of the last epoch seen; ``-1`` starts a new schedule.
            Anything else resumes one and needs ``initial_lr`` in every group.

    Raises:
        TypeError: ``optimizer`` is not an ember Optimizer.
        KeyError: resuming (``last_epoch >= 0``) without ``initial_lr`` in a group.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an ember.optim Optimizer, got {type(optimizer).__name__}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"{name}: expected last_epoch to be an int >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"{name}: param_groups[{i}] has no 'initial_lr', needed to resume with last_epoch="
                    f"{last_epoch}; load the optimizer's state dict first, or start with last_epoch=-1"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate of a group whose initial lr is ``base_lr``, at ``epoch``."""
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The learning rates for ``last_epoch``, one per param group."""
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step`` set, one per param group."""
        return list(self._last_lr)

    @replayable
    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch``) and write the new lr into every group.

        Raises:
            ValueError: the optimizer's group count changed since the scheduler was made.
        """
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"{type(self).__name__}.step: the optimizer has {len(groups)} param groups but the scheduler "
                f"was made for {len(self.base_lrs)}"
            )
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        lrs = self.get_lr()
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (epoch, base lrs, hyper-parameters) as plain Python values."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict`` of the same kind of scheduler.

        The optimizer's lrs are not touched: they come back with the optimizer's own
        state dict, and the next ``step`` recomputes them from the restored epoch.

        Raises:
            ValueError: the keys or the number of base lrs do not match this scheduler.
        """
        name = f"{type(self).__name__}.load_state_dict"
        expected = set(self.state_dict())
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}: expected keys {sorted(expected)}, got {got}")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{name}: the state has {len(state_dict['base_lrs'])} base lrs, the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, (list, tuple)) else v)
