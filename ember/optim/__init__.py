"""Optimizers and learning-rate schedules (PyTorch's ``torch.optim`` API).

``SGD``, ``Adagrad``, ``RMSprop``, ``Adadelta``, ``Adam`` and ``AdamW`` update
parameters in place from their ``.grad``; ``lr_scheduler`` changes their
groups' ``"lr"`` between epochs.
"""

from ember.optim import lr_scheduler
from ember.optim.adam import Adam, AdamW
from ember.optim.adaptive import Adadelta, Adagrad, RMSprop
from ember.optim.optimizer import Optimizer
from ember.optim.sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
