"""``summary(model, input_shape)``: a Keras-style table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any, Sequence

from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.nn.module import Module


def _shape_text(out: Any, batch: int) -> str:
    """``(None, 30, 24, 24)``: the batch dimension shown as None, as Keras does."""
    if isinstance(out, Tensor):
        dims = list(out.shape)
        if dims and dims[0] == batch:
            dims[0] = None
        return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_text(o, batch) for o in out) + "]"
    return type(out).__name__


def _as_shapes(input_shape: Any) -> list[tuple]:
    if isinstance(input_shape, (list, tuple)) and input_shape and all(
            isinstance(s, (list, tuple)) for s in input_shape):
        shapes = [tuple(s) for s in input_shape]
    else:
        shapes = [tuple(input_shape)]
    for s in shapes:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s):
            raise ValueError(f"summary: expected input_shape of positive ints (one sample, no batch), got {s}")
    return shapes


def summary(model: Module, input_shape: Sequence[int] | Sequence[Sequence[int]], batch_size: int = 2,
            dtype: Any = None, device: Any = None, print_fn: Any = print) -> str:
    """Describe ``model`` layer by layer, running it once on zeros to find the output shapes.

    Rows are the modules that hold parameters or have no submodules, by dotted
    name, in the order they run; a module called several times gets one row per
    call (its parameters counted once in the totals).

    Args:
        model: the Module to describe.
        input_shape: one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``,
            or a list of shapes for a model with several inputs.
        batch_size: the batch of zeros run through the model (shown as None).
        dtype: the input dtype; by default the first parameter's (else the default float).
        device: the input device; by default the first parameter's.
        print_fn: called with the text (None: do not print).

    Returns:
        The summary text.

    Raises:
        TypeError: ``model`` is not a Module.
        ValueError: ``input_shape`` is not made of positive ints.
    """
    from ember.autograd.creation import zeros

    if not isinstance(model, Module):
        raise TypeError(f"summary: expected an ember.nn.Module, got {type(model).__name__}")
    shapes = _as_shapes(input_shape)
    params = list(model.parameters())
    if dtype is None and params:
        dtype = params[0].dtype
    if device is None and params:
        device = params[0].device
    rows: list[tuple[str, str, int]] = []
    names = {id(m): name for name, m in model.named_modules()}
    handles = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if mod is model and mod._modules:
            continue
        if own or not any(True for _ in mod.children()):
            def record(m: Module, args: Any, out: Any) -> None:
                label = f"{names.get(id(m)) or 'model'} ({type(m).__name__})"
                rows.append((label, _shape_text(out, batch_size), sum(p.numel() for p in m.parameters(recurse=False))))

            handles.append(mod.register_forward_hook(record))
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()  # batch statistics and dropout would make the run depend on the zeros
    try:
        inputs = [zeros((batch_size, *s), dtype=dtype, device=device) for s in shapes]
        with no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training:
            object.__setattr__(m, "training", flag)
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    width = [max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2,
             max([len("Output Shape")] + [len(r[1]) for r in rows]) + 2,
             max([len("Param #")] + [len(f"{r[2]:,}") for r in rows])]
    line = "-" * (sum(width) + 1)
    out = [f'Model: "{type(model).__name__}"', line,
           f" {'Layer (type)':<{width[0]}}{'Output Shape':<{width[1]}}{'Param #':>{width[2]}}", "=" * len(line)]
    for label, shape, count in rows:
        out.append(f" {label:<{width[0]}}{shape:<{width[1]}}{count:>{width[2]},}")
    out += ["=" * len(line), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}"]
    if buffers:
        out.append(f"Buffers (not parameters): {buffers:,}")
    out.append(line)
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
