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
