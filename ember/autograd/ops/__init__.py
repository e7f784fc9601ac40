"""Differentiable ops, one ``Function`` per op, grouped by kind.

Importing this package registers every op (functional form + Tensor methods).
"""

from ember.autograd.ops import convert, elementwise, indexing, linalg, reduce, select, shape  # noqa: F401
from ember.autograd.ops import activation, loss, nn_ops  # noqa: F401
from ember.autograd.ops import conv, im2col, pool  # noqa: F401
from ember.autograd.ops import reduce_nonlinear, scan, sorting  # noqa: F401

# Tensor ops added for PyTorch fidelity.
from ember.autograd.ops import gather_scatter, logical, math, matrix, pairwise, rearrange, split  # noqa: F401
from ember.autograd.ops import activation_extra  # noqa: F401  (PyTorch activations: gelu, silu, ...)
from ember.autograd.ops import loss_extra  # noqa: F401  (binary cross-entropies, weighted / smoothed NLL)
from ember.autograd.ops import padding  # noqa: F401  (F.pad)
from ember.autograd.ops import conv_extra  # noqa: F401  (conv1d, conv_transpose2d, dilation/groups)
from ember.autograd.ops import resize  # noqa: F401  (interpolate, adaptive_avg_pool2d)
from ember.autograd.ops import attention, einsum  # noqa: F401  (sdpa, normalize, one_hot; einsum)
from ember.autograd.ops import conv_relu  # noqa: F401  (conv2d followed by ReLU, fused on CUDA)
from ember.autograd.ops import linear_relu  # noqa: F401  (linear followed by ReLU, fused on the CPU)
