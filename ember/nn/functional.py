"""``ember.nn.functional`` (F): stateless layer functions.

Every name here is a differentiable op defined, with its backward, in
``ember.autograd.ops``; this module only gathers them under PyTorch's names.
"""

from ember.autograd.ops.elementwise import relu, sigmoid, tanh  # noqa: F401
from ember.autograd.ops.activation import log_softmax, softmax  # noqa: F401
from ember.autograd.ops.loss import cross_entropy, mse_loss, nll_loss  # noqa: F401
from ember.autograd.ops.nn_ops import batch_norm, dropout, linear  # noqa: F401
from ember.autograd.ops.conv import conv2d  # noqa: F401
from ember.autograd.ops.im2col import col2im, im2col  # noqa: F401
from ember.autograd.ops.pool import avg_pool2d, max_pool2d  # noqa: F401
# PyTorch's extra activations
from ember.autograd.ops.activation_extra import (  # noqa: F401
    elu, gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, logsigmoid, mish, relu6, selu, silu, softplus,
)
# PyTorch's binary cross-entropies (weights / ignore_index / label_smoothing live on cross_entropy, nll_loss)
from ember.autograd.ops.loss_extra import binary_cross_entropy, binary_cross_entropy_with_logits  # noqa: F401
# Padding, PyTorch's F.pad
from ember.autograd.ops.padding import pad  # noqa: F401
# Convolution beyond conv2d's defaults (conv2d itself takes dilation= and groups=)
from ember.autograd.ops.conv_extra import conv1d, conv_transpose2d  # noqa: F401
# Resizing: interpolation and adaptive average pooling
from ember.autograd.ops.resize import adaptive_avg_pool2d, interpolate  # noqa: F401
# Attention and friends
from ember.autograd.ops.attention import normalize, one_hot, scaled_dot_product_attention  # noqa: F401
# conv2d followed by ReLU as one op (fused epilogues on CUDA)
from ember.autograd.ops.conv_relu import conv2d_relu  # noqa: F401
from ember.autograd.ops.linear_relu import linear_relu  # noqa: F401
