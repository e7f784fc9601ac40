"""Neural-network building blocks: Module, Parameter, layers, functional, init."""

from ember.nn.parameter import Parameter
from ember.nn.module import Module
from ember.nn.container import ModuleList, Sequential
from ember.nn import functional
from ember.nn import init
from ember.nn.layers.activation import LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ember.nn.layers.linear import Flatten, Identity, Linear
from ember.nn.layers.loss import CrossEntropyLoss, MSELoss
from ember.nn.layers.norm import BatchNorm1d, BatchNorm2d, Dropout
from ember.nn.layers.conv import AvgPool2d, Conv2d, MaxPool2d
# Containers with keys / parameter lists, and the training utilities (clipping, flat vectors).
from ember.nn.module_dict import ModuleDict
from ember.nn.parameter_list import ParameterList
from ember.nn import utils
# PyTorch's extra activation layers
from ember.nn.layers.activation_extra import (  # noqa: F401
    ELU, GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid, Mish, ReLU6, SELU, SiLU, Softplus,
)
# PyTorch's extra loss layers
from ember.nn.layers.loss_extra import BCELoss, BCEWithLogitsLoss, NLLLoss  # noqa: F401
# PyTorch's extra convolution, resizing and pooling layers
from ember.nn.layers.conv_extra import AdaptiveAvgPool2d, Conv1d, ConvTranspose2d, Upsample  # noqa: F401
