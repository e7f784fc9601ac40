"""``ember.amp``: float16 mixed precision (``autocast``, ``GradScaler``) and precision helpers.

See ``autocast.py`` for the op policy and ``grad_scaler.py`` for loss scaling
and float32 master weights; ``precision.py`` converts whole models for
inference at another precision (the book's bit-reduction experiment).
"""

from ember.amp.autocast import autocast, get_autocast_dtype, is_autocast_enabled, op_policy
from ember.amp.grad_scaler import GradScaler
from ember.amp.precision import converted_copy, rounded_copy

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "op_policy", "converted_copy",
           "rounded_copy"]
