"""The book's layers in plain NumPy, no autograd: the "from scratch" baseline of the benchmarks.

Each layer has ``forward`` and a hand-written ``backward`` (chapters 5-8 of *Deep
Learning from Scratch*); a network is a list of layers plus ``SoftmaxWithLoss``.
Ember generalises exactly this, so the harness times it next to ember.
"""

from benchmarks.book_numpy.conv import Convolution, Pooling, col2im, im2col
from benchmarks.book_numpy.layers import Affine, Dropout, Relu, Sigmoid, SoftmaxWithLoss
from benchmarks.book_numpy.nets import BookNet, build_net
from benchmarks.book_numpy.optim import SGD, Adam

__all__ = ["Affine", "Relu", "Sigmoid", "Dropout", "SoftmaxWithLoss", "Convolution", "Pooling", "im2col",
           "col2im", "SGD", "Adam", "BookNet", "build_net"]
