"""Autograd: Tensor, Function, the backward engine, grad modes and gradient checks."""

from ember.autograd.tensor import Size, Tensor
from ember.autograd.function import Function
from ember.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ember.autograd import ops  # noqa: F401  (registers every op and Tensor method)
from ember.autograd import tensor_ops  # noqa: F401  (installs the engine's create_graph namespace)
from ember.autograd.api import grad
from ember.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from ember.autograd.registry import OPS
from ember.autograd.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly

__all__ = [
    "Tensor", "Size", "Function", "grad", "gradcheck", "gradgradcheck", "GradcheckError",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "OPS",
    "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
]

# Drawing the recorded graph (Graphviz DOT text, rendered pictures).
from ember.autograd.graphviz import plot_graph, to_dot  # noqa: E402

__all__ += ["to_dot", "plot_graph"]
