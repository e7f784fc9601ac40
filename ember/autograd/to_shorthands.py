"""``cpu()``, ``cuda()``, ``float()``, ``half()``, ``double()``: shorthands for ``to(...)``.

One mixin for everything with a ``to(device_or_dtype)`` method, so that Tensor
and ``nn.Module`` spell these conversions the same way.
"""

from __future__ import annotations

from typing import Any

from ember import dtypes


class ToShorthands:
    """Mixin: device and dtype shorthands over the host class's ``to``."""

    __slots__ = ()

    def to(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement to()")

    def cpu(self) -> Any:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Any:
        return self.to(f"cuda:{index}")

    def float(self) -> Any:
        return self.to(dtypes.float32)

    def half(self) -> Any:
        return self.to(dtypes.float16)

    def double(self) -> Any:
        return self.to(dtypes.float64)
