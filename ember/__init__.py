"""Ember: a define-by-run autograd engine with a PyTorch-style API.

``import ember as em``; see README.md for a tour.  This module re-exports the
public names of DESIGN.md; the subpackages hold the implementations.
"""

from ember import autograd
from ember.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ember.autograd.creation import (
    arange, empty, eye, from_numpy, full, full_like, ones, ones_like, tensor, zeros, zeros_like,
)
from ember.autograd.ops.elementwise import (
    abs, add, clamp, clip, div, exp, log, mul, neg, pow, relu, sigmoid, sqrt, sub, tanh,
)
from ember.autograd.ops.select import eq, ge, gt, le, lt, ne, where
from ember.autograd.ops.indexing import getitem
from ember.autograd.ops.linalg import dot, matmul
from ember.autograd.ops.reduce import amax, amin, argmax, argmin, max, mean, min, sum, var
from ember.autograd.ops.shape import (
    broadcast_to, cat, concatenate, expand, flatten, permute, reshape, squeeze, stack, swapaxes, transpose,
    unsqueeze,
)
from ember.backends import Device, device
from ember.dtypes import (
    bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16, int32, int64, long,
    set_default_dtype, uint8,
)
from ember.errors import DeviceMismatchError, DTypeError, GraphError, ShapeError
from ember.random import get_rng_state, manual_seed, rand, randint, randn, randperm, set_rng_state
from ember.serialization import load, save
# Einstein summation, torch.einsum's rules
from ember.autograd.ops.einsum import einsum  # noqa: E402
from ember import cuda
from ember import data, models, nn, optim  # noqa: E402  (after the core names they build on)
from ember import amp  # noqa: E402

__version__ = "0.1.0"
