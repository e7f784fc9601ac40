"""More lr schedules: ``MultiStepLR``, ``ExponentialLR``, ``LambdaLR``, ``OneCycleLR``, ``ReduceLROnPlateau``.

The first four are closed forms of the epoch (or batch) count on top of
``LRScheduler``; ``ReduceLROnPlateau`` reacts to a metric instead, so it keeps
its own counters.  All follow PyTorch's arguments and lr sequences.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from typing import Any, Callable

from ember.autograd.capture import replayable
from ember.optim.scheduler import LRScheduler
from ember.optim.optimizer import Optimizer


def _real(sched: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{sched}: expected {name} to be a real number, got {value!r}")
    return value


def _per_group(sched: str, name: str, value: Any, optimizer: Optimizer) -> list:
    """One value per param group: a list/tuple of the right length, or a scalar repeated."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{sched}: expected {n} values for {name} (one per param group), got {len(value)}")
        return [_real(sched, name, v) for v in value]
    return [_real(sched, name, value)] * n


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: ``lr = initial_lr * gamma ** (epoch // step_size)``.

    Args:
        optimizer: the optimizer to schedule.
        step_size: epochs between decays, a positive int.
        gamma: the decay factor.
        last_epoch: see ``LRScheduler``.

    Raises:
        ValueError: ``step_size`` is not a positive int.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size <= 0:
            raise ValueError(f"StepLR: expected step_size to be a positive int, got {step_size!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
            raise TypeError(f"StepLR: expected gamma to be a real number, got {gamma!r}")
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the lr from ``initial_lr`` to ``eta_min`` along half a cosine over ``T_max`` epochs.

    ``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``; past
    ``T_max`` the cosine goes on, so the lr rises again (SGDR without restarts, as in PyTorch).

    Args:
        optimizer: the optimizer to schedule.
        T_max: epochs of the half period, > 0.
        eta_min: the minimum lr.
        last_epoch: see ``LRScheduler``.

    Raises:
        ValueError: ``T_max`` is not a positive number.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Real) or not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: expected T_max > 0, got {T_max!r}")
        if isinstance(eta_min, bool) or not isinstance(eta_min, numbers.Real):
            raise TypeError(f"CosineAnnealingLR: expected eta_min to be a real number, got {eta_min!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


# The other schedules live in their own module; imported last, as they subclass LRScheduler.
class MultiStepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (number of milestones <= epoch)``.

    Args:
        optimizer: the optimizer to schedule.
        milestones: epoch indices at which the lr decays (a repeated milestone decays twice).
        gamma: the decay factor.
        last_epoch: see ``LRScheduler``.
    """

    def __init__(self, optimizer: Optimizer, milestones: Any, gamma: float = 0.1, last_epoch: int = -1):
        ms = list(milestones)
        if not all(isinstance(m, numbers.Integral) and not isinstance(m, bool) for m in ms):
            raise TypeError(f"MultiStepLR: expected milestones to be ints, got {ms!r}")
        self.milestones = sorted(int(m) for m in ms)
        self.gamma = _real("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """``lr = initial_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = _real("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(epoch)``, one function for all groups or one per group.

    ``state_dict`` keeps the state of callable objects (their ``__dict__``) and
    None for plain functions and lambdas, which cannot be saved as values.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable | list, last_epoch: int = -1):
        n = len(optimizer.param_groups)
        fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n:
            raise ValueError(f"LambdaLR: expected {n} lr_lambdas (one per param group), got {len(fns)}")
        for f in fns:
            if not callable(f):
                raise TypeError(f"LambdaLR: expected callables, got {type(f).__name__}")
        self.lr_lambdas = fns
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        state = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()
                 if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if _is_plain_function(f) else dict(vars(f)) for f in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None)
        if saved is None or len(saved) != len(self.lr_lambdas):
            raise ValueError(f"LambdaLR.load_state_dict: expected {len(self.lr_lambdas)} lr_lambdas entries")
        fns = self.lr_lambdas
        super().load_state_dict({**state, "lr_lambdas": fns})
        for f, s in zip(fns, saved):
            if s is not None:
                vars(f).update(s)


def _is_plain_function(f: Any) -> bool:
    return not hasattr(f, "__dict__") or type(f).__name__ in ("function", "builtin_function_or_method", "method")


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up to ``max_lr``, anneal far below the start; step once per batch.

    Phases (``pct`` goes 0 -> 1 within each): ``initial_lr = max_lr / div_factor`` ->
    ``max_lr`` over ``pct_start * total_steps`` steps, then -> ``initial_lr / final_div_factor``;
    with ``three_phase`` back to ``initial_lr`` first, then down.  Momentum (SGD's
    ``momentum`` or Adam's ``beta1``) moves the opposite way between ``max_momentum``
    and ``base_momentum`` when ``cycle_momentum``.

    Raises:
        ValueError: no step count, a bad ``pct_start`` or ``anneal_strategy``, momentum cycling on an
            optimizer without momentum, or stepping past ``total_steps``.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True, base_momentum: float | list = 0.85,
                 max_momentum: float | list = 0.95, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        name = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{name}: give total_steps, or both epochs and steps_per_epoch")
            if epochs <= 0 or steps_per_epoch <= 0:
                raise ValueError(f"{name}: expected positive epochs and steps_per_epoch, got {epochs}, "
                                 f"{steps_per_epoch}")
            total_steps = epochs * steps_per_epoch
        if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps <= 0:
            raise ValueError(f"{name}: expected total_steps to be a positive int, got {total_steps!r}")
        if not 0 <= _real(name, "pct_start", pct_start) <= 1:
            raise ValueError(f"{name}: expected pct_start in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: expected anneal_strategy 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps = int(total_steps)
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        end_up = float(pct_start * total_steps) - 1
        if three_phase:
            self.phases = [
                (end_up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self.phases = [
                (end_up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        groups = optimizer.param_groups
        if last_epoch == -1:
            for group, top in zip(groups, _per_group(name, "max_lr", max_lr, optimizer)):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.use_beta1 = "betas" in optimizer.defaults
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and not self.use_beta1:
                raise ValueError(f"{name}: cycle_momentum needs an optimizer with momentum or betas "
                                 f"({type(optimizer).__name__} has neither); pass cycle_momentum=False")
            if last_epoch == -1:
                tops = _per_group(name, "max_momentum", max_momentum, optimizer)
                bases = _per_group(name, "base_momentum", base_momentum, optimizer)
                for group, top, base in zip(groups, tops, bases):
                    self._set_momentum(group, top)
                    group["max_momentum"] = top
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {step} times, but total_steps is {self.total_steps}; "
                "make total_steps (or epochs * steps_per_epoch) cover every optimizer step"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self.phases):
                if step <= end or i == len(self.phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                start = end
        return lrs


class ReduceLROnPlateau:
    """Multiply every group's lr by ``factor`` once a metric stops improving for ``patience`` epochs.

    Args:
        optimizer: the optimizer whose lrs to reduce.
        mode: ``"min"`` (lower is better, e.g. a loss) or ``"max"`` (e.g. accuracy).
        factor: the multiplier, < 1.
        patience: epochs without improvement tolerated before a reduction.
        threshold: the least change that counts as an improvement.
        threshold_mode: ``"rel"`` (``best * (1 -/+ threshold)``) or ``"abs"`` (``best -/+ threshold``).
        cooldown: epochs after a reduction during which bad epochs are not counted.
        min_lr: a floor for the lr, one value or one per group.
        eps: reductions smaller than this are skipped.

    Use: ``scheduler.step(val_loss)`` once per epoch.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list = 0, eps: float = 1e-8):
        name = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an ember.optim Optimizer, got {type(optimizer).__name__}")
        if _real(name, "factor", factor) >= 1.0:
            raise ValueError(f"{name}: expected factor < 1.0, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: expected mode 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: expected threshold_mode 'rel' or 'abs', got {threshold_mode!r}")
        for key, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name}: expected {key} to be an int >= 0, got {value!r}")
        self.optimizer = optimizer
        self.min_lrs = _per_group(name, "min_lr", min_lr, optimizer)
        self.mode, self.factor, self.patience = mode, factor, int(patience)
        self.threshold, self.threshold_mode = _real(name, "threshold", threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` improves on ``best`` by more than the threshold."""
        if self.mode == "min":
            bound = best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return current < bound
        bound = best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return current > bound

    @replayable
    def step(self, metrics: Any) -> None:
        """Record one epoch's metric and reduce the lrs if it has plateaued."""
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        expected = set(self.state_dict())
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: expected keys {sorted(expected)}, got {got}")
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, list) else v)
