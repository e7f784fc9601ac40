"""Learning-rate schedules: ``LRScheduler`` (the base), ``StepLR``, ``CosineAnnealingLR`` and (from
``ember.optim.schedules``) ``MultiStepLR``, ``ExponentialLR``, ``LambdaLR``, ``OneCycleLR``, ``ReduceLROnPlateau``.

A scheduler owns an epoch counter and writes ``group["lr"]`` of every group of
its optimizer.  Each learning rate is computed in closed form from the group's
``initial_lr`` and the epoch (PyTorch's ``_get_closed_form_lr``), not by
updating the previous value: the sequence has no rounding drift, and a resumed
run (``load_state_dict``) continues exactly.  The price is that two schedulers
on one optimizer do not compose (the last one to step wins), unlike PyTorch's
chainable form.

Use: ``optimizer.step()`` every batch, ``scheduler.step()`` once per epoch.
"""

from ember.optim.scheduler import LRScheduler
from ember.optim.schedules import (
    CosineAnnealingLR, ExponentialLR, LambdaLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau, StepLR,
)

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "MultiStepLR", "ExponentialLR", "LambdaLR",
           "OneCycleLR", "ReduceLROnPlateau"]
