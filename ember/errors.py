"""Exception types every layer of ember raises.

Messages follow one shape, ``"<op>: expected <contract>, got <actual>"``, so a
user can see which operation failed and with which shapes, dtypes or devices.
Each type subclasses the built-in a user would catch for the same mistake.
"""


class ShapeError(ValueError):
    """Operands whose shapes do not fit the op (matmul, broadcasting, axes, reshape)."""


class DTypeError(TypeError):
    """An operand's dtype is not allowed by the op (int tensors with grad, mixed floats)."""


class DeviceMismatchError(RuntimeError):
    """Operands live on different devices; ember never copies between them implicitly."""


class GraphError(RuntimeError):
    """Misuse of the autograd graph: freed graphs, in-place edits of saved tensors."""
