"""Exception types every layer of ember raises.

Messages follow one shape, ``"<op>: expected <contract>, got <actual>"``, so a
user can see which operation failed and with which shapes, dtypes or devices.
Each type subclasses the built-in a NumPy user would catch for the same mistake
and the one PyTorch raises for it (``RuntimeError``, ``IndexError``), so code
written against either keeps working.
"""


class ShapeError(ValueError, RuntimeError):
    """Operands whose shapes do not fit the op (matmul, broadcasting, axes, reshape, kernel sizes)."""


class DTypeError(TypeError, RuntimeError):
    """An operand's dtype is not allowed by the op (int tensors with grad, mixed floats)."""


class IndexOutOfRangeError(ShapeError, IndexError):
    """An index outside the tensor (``x[5]`` of a length-3 axis), an IndexError as in PyTorch."""


class IndexDTypeError(DTypeError, IndexError):
    """An index of a dtype that cannot index (float tensors and numbers), an IndexError as in PyTorch."""


class DeviceMismatchError(RuntimeError):
    """Operands live on different devices; ember never copies between them implicitly."""


class GraphError(RuntimeError):
    """Misuse of the autograd graph: freed graphs, in-place edits of saved tensors."""


class AnomalyError(RuntimeError):
    """Anomaly mode found an op whose forward or backward produced NaN/Inf (``autograd.detect_anomaly``).

    Attributes:
        op: the Function class name; phase: ``"forward"`` or ``"backward"``;
        index: the output (forward) or input (backward) number; frames: the op's
        creation stack as ``(filename, lineno, function)``, innermost user frame first.
    """

    def __init__(self, message: str, op: str = "", phase: str = "", index: int = -1, frames: tuple = ()):
        super().__init__(message)
        self.op, self.phase, self.index, self.frames = op, phase, index, frames


class StateDictKeyError(KeyError, RuntimeError):
    """``load_state_dict(strict=True)`` got missing or unexpected keys.

    A KeyError (as documented since the first release) that is also a
    RuntimeError, like every other ember error a user may catch generically.
    """

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""
