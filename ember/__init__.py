"""Ember: a define-by-run autograd engine with a PyTorch-style API.

``import ember as em``; see README.md for a tour.  This module re-exports the
public API; the subpackages hold the implementations.
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
from ember.autograd.ops.activation import log_softmax, softmax
from ember.autograd.ops.reduce_nonlinear import logsumexp, prod, std
from ember.autograd.ops.scan import cumprod, cumsum
from ember.autograd.ops.sorting import argsort, sort, topk
from ember.autograd.ops.math import (  # tensor ops for PyTorch fidelity
    ceil, cos, erf, exp2, fix, floor, log2, log10, round, rsqrt, sign, sin, trunc,
)
from ember.autograd.ops.pairwise import floor_divide, lerp, maximum, minimum, remainder
from ember.autograd.ops.logical import (
    allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, isclose, isfinite, isinf, isnan, logical_and,
    logical_not, logical_or, logical_xor, nonzero,
)
from ember.autograd.ops.gather_scatter import gather, masked_fill, scatter, scatter_add
from ember.autograd.ops.matrix import bmm, diag, mm, tril, triu
from ember.autograd.ops.rearrange import flip, repeat_interleave, roll, unflatten
from ember.autograd.ops.split import chunk, split
from ember.autograd.ranges import linspace
from ember.backends import Device, device
from ember.dtypes import (
    bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16, int32, int64, long,
    set_default_dtype, uint8,
)
from ember.errors import DeviceMismatchError, DTypeError, GraphError, ShapeError
from ember.random import get_rng_state, manual_seed, rand, randint, randn, randperm, set_rng_state
# The counter-based (Philox4x32-10) generator of dropout masks
from ember.random import PhiloxGenerator, default_philox_generator  # noqa: E402
from ember.serialization import load, save
# Einstein summation, torch.einsum's rules
from ember.autograd.ops.einsum import einsum  # noqa: E402
from ember import cuda
from ember import data, models, nn, optim  # noqa: E402  (after the core names they build on)
from ember import amp  # noqa: E402
# Keras-style model summary (layers, output shapes, parameter counts).
from ember.nn.summary import summary  # noqa: E402
from ember import graphs  # noqa: E402
from ember.graphs import compile  # noqa: E402,A001  (PyTorch's name: ember.compile(step))

__version__ = "0.1.0"
