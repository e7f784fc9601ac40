"""The ``dropout`` op: inverted dropout with masks from the counter-based Philox4x32-10 stream.

The mask is made on ``x``'s device by the backend's ``nn.dropout_mask`` (a CUDA
kernel, or its NumPy twin on the CPU) from a ``[seed, offset]`` state that lives
on that device and is advanced there, so masks need no host draw or copy: a
captured CUDA graph draws a fresh one per replay, and the CPU tape replay
(``ember.compile``) does too, since it runs this forward again.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import require_floating
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor


def _check_tensor(op: str, name: str, t: Any) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")


class InvertedDropout(Function):
    """``y = x * mask`` with ``mask`` in ``{0, 1/(1-p)}`` (inverted dropout); ``gx = gy * mask``."""

    @staticmethod
    def forward(ctx: Function, x: Any, p: float, state: Any, fixed: bool) -> Any:
        # The mask is drawn here, not by the caller, so a replayed step (ember.compile) draws a new one:
        # ``state`` is the live [seed, offset] array the mask kernel advances.  A ``fixed`` state (an int
        # seed) is copied first, so every call and replay starts from it; a NumPy generator gives a key.
        if isinstance(state, numpy.random.Generator):
            from ember.backends.reference.philox import new_state

            state = new_state(int(state.integers(0, 2**64, dtype=numpy.uint64)), xp=ctx.backend.xp)
        elif fixed:
            state = state.copy()
        mask = ctx.backend.nn.dropout_mask(tuple(x.shape), p, state, x.dtype, xp=ctx.backend.xp)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (mask,) = ctx.saved_arrays  # a constant: the same mask as the forward's
        return gy * mask


def _dropout_samples(rng: Any) -> list:
    # An explicit seed fixes the mask, so the many calls of gradcheck see one function.
    return [
        sample(rng.normal(size=(4, 5)), 0.3, generator=7),
        sample(rng.normal(size=(2, 3, 4)), 0.5, generator=11, note="3-d"),
    ]


@register("dropout", samples=_dropout_samples)
def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator: Any = None) -> Tensor:
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

    The expectation is unchanged, so evaluation needs no rescaling: with
    ``training=False`` or ``p == 0`` the input is returned as is.  The mask comes
    from a Philox4x32-10 stream made on ``x``'s device (a CUDA kernel, or its NumPy
    twin on the CPU): one seed gives one mask on every device, and no host draw
    or copy happens, so a CUDA-graph-captured step draws a fresh mask per replay.

    Args:
        x: any shape, floating.
        p: drop probability in ``[0, 1)``.
        training: apply dropout (else identity).
        generator: ``None`` for ``ember.default_philox_generator()`` (seeded by
            ``manual_seed``), an ``ember.PhiloxGenerator``, an int seed (the same
            mask at every call: offset 0 of that key), or a ``numpy.random.Generator``
            (one 64-bit key drawn from it per call, on the host: not for CUDA graphs).

    Returns:
        ``x``'s shape and dtype. Backward: ``gx = gy * mask`` (the forward's mask).

    Raises:
        ValueError: ``p`` outside ``[0, 1)``.
        DTypeError: ``x`` is not floating.
        TypeError: ``generator`` of another kind.
        RuntimeError: inside a CUDA graph capture, a generator without a state on
            ``x``'s device yet, or a ``numpy.random.Generator`` (either would freeze the mask).
    """
    from ember.philox_generator import PhiloxGenerator, default_philox_generator

    op = "dropout"
    _check_tensor(op, "the input", x)
    require_floating(op, x)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{op}: expected a drop probability p in [0, 1), got {p!r}")
    if not training or p == 0:
        return x
    fixed = False
    capturing = x.device.type == "cuda" and _cuda_capturing()
    if generator is None or isinstance(generator, PhiloxGenerator):
        generator = default_philox_generator() if generator is None else generator
        if capturing and not generator.has_state(str(x.device)):
            # Made inside the graph, the state's fill would replay too and reset the offset every step.
            raise RuntimeError(
                f"{op}: the dropout generator has no state on {x.device} yet, and a CUDA graph is being captured; "
                "run the step once eagerly before capturing (a warm-up step makes the state)"
            )
        state = generator.state(str(x.device), _device_xp(x))
    elif isinstance(generator, (int, numpy.integer)) and not isinstance(generator, bool):
        if generator < 0:
            raise ValueError(f"{op}: expected a non-negative int seed, got {generator}")
        from ember.backends.reference.philox import new_state

        state, fixed = new_state(int(generator), xp=_device_xp(x)), True
    elif isinstance(generator, numpy.random.Generator):
        if capturing:
            raise RuntimeError(
                f"{op}: a numpy.random.Generator draws its key on the host, which a CUDA graph would freeze; "
                "pass an ember.PhiloxGenerator (or None for the default one) inside a captured step"
            )
        state = generator  # a key is drawn from it in forward, so a replayed step (CPU tape) draws a new one
    else:
        raise TypeError(
            f"{op}: expected generator to be an ember.PhiloxGenerator, an int seed or a numpy.random.Generator, "
            f"got {generator!r}"
        )
    return InvertedDropout.apply(x, p=float(p), state=state, fixed=fixed)


def _cuda_capturing() -> bool:
    """True while CuPy's current stream is capturing a CUDA graph."""
    from ember.backends.cupy.philox import stream_is_capturing

    return stream_is_capturing()


def _device_xp(x: Tensor) -> Any:
    """The array module that makes arrays on ``x``'s device (a per-GPU view on CUDA)."""
    from ember.backends.device import get_backend

    return get_backend(x.device).xp
