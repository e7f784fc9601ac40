"""PyTorch's convolution options over the im2col kernels: ``dilation``, ``groups``, string
padding, ``conv1d`` and ``conv_transpose2d``.

The kernels of ``ember.backends`` know neither dilation nor groups, so both are built at the op
level, as compositions of differentiable ops around ``Convolution2d`` /
``TransposedConvolution2d``:

- dilation: the filter is spread onto a ``(KH-1)*dh + 1`` by ``(KW-1)*dw + 1`` grid of zeros
  (``DilateKernel``, whose backward is a strided slice), then convolved normally.  This costs
  the zeros' multiplications (about ``dh*dw`` times the FLOPs of the same conv undilated) but
  needs no new kernel;
- groups: the channels are cut into ``groups`` slices, each convolved with its filters, and the
  results concatenated along the channel axis;
- ``padding="same"`` with an even effective kernel needs one more row/column on the right/bottom,
  which ``pad`` adds before an unpadded convolution (as PyTorch).
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function
from ember.autograd.ops import conv as _conv
from ember.autograd.ops.conv import TransposedConvolution2d, _check_tensor, conv2d
from ember.autograd.ops.padding import pad as _pad
from ember.autograd.ops.shape import cat
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends import geometry as _k
from ember.errors import DTypeError, ShapeError


class DilateKernel(Function):
    """Spread ``W: (OC, C, KH, KW)`` onto zeros at steps ``(dh, dw)``; backward ``gW = g[:, :, ::dh, ::dw]``."""

    @staticmethod
    def forward(ctx: Function, W: Any, *, dilation: tuple) -> Any:
        dh, dw = dilation
        oc, c, kh, kw = W.shape
        ctx.dilation = dilation
        # zeros_like keeps W's array type (and so its device)
        out = ctx.backend.xp.zeros_like(W, shape=(oc, c, (kh - 1) * dh + 1, (kw - 1) * dw + 1))
        out[:, :, ::dh, ::dw] = W
        return out

    @staticmethod
    def backward(ctx: Function, g: Any) -> Any:
        dh, dw = ctx.dilation
        return g[:, :, ::dh, ::dw]  # basic slicing: the getitem op on Tensors under create_graph


def _dilate(W: Tensor, dilation: tuple) -> Tensor:
    return W if dilation == (1, 1) else DilateKernel.apply(W, dilation=dilation)


def _groups(op: str, groups: Any, channels: int, out_channels: int) -> int:
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: expected groups to be a positive int, got {groups!r}")
    if channels % groups or out_channels % groups:
        raise ValueError(
            f"{op}: expected in_channels ({channels}) and out_channels ({out_channels}) divisible by "
            f"groups={groups}"
        )
    return groups


def _check_operands(op: str, x: Any, W: Any, ndim: int, layout: str) -> None:
    """``x`` and ``W`` are Tensors of rank ``ndim``; ``layout`` spells the expected shapes in the error."""
    _check_tensor(op, "x", x)
    _check_tensor(op, "W", W)
    if x.ndim != ndim or W.ndim != ndim:
        raise ShapeError(f"{op}: expected {layout}, got shapes {tuple(x.shape)} and {tuple(W.shape)}")


def _dilation(op: str, dilation: Any) -> tuple:
    """``dilation`` as a pair of ints, each at least 1."""
    dilation = _k.pair(dilation, "dilation", op=op)
    if min(dilation) < 1:
        raise ValueError(f"{op}: expected dilation >= 1, got {dilation}")
    return dilation


def _same_padding(op: str, x: Tensor, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """``(x padded on the right where needed, symmetric padding)`` for ``padding="same"``."""
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    sym = (total[0] // 2, total[1] // 2)
    extra = (total[0] - 2 * sym[0], total[1] - 2 * sym[1])
    if extra != (0, 0):
        x = _pad(x, (0, extra[1], 0, extra[0]))
    return x, sym


def conv2d_general(x: Tensor, W: Tensor, b: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                   dilation: Any = 1, groups: int = 1) -> Tensor:
    """``conv2d`` with dilation, groups and ``"same"``/``"valid"`` padding; see ``conv2d``."""
    op = "conv2d"
    _check_operands(op, x, W, 4, "x (N, C, H, W) and W (OC, C/groups, KH, KW)")
    stride = _k.pair(stride, "stride", op=op)
    dilation = _dilation(op, dilation)
    oc, cg = W.shape[:2]
    groups = _groups(op, groups, x.shape[1], oc)
    if cg * groups != x.shape[1]:
        raise ShapeError(
            f"{op}: expected x with {cg * groups} channels (W of shape {tuple(W.shape)} x groups={groups}), "
            f"got x of shape {tuple(x.shape)}"
        )
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            x, padding = _same_padding(op, x, tuple(W.shape[2:]), stride, dilation)
        else:
            raise ValueError(f"{op}: expected padding 'same', 'valid', an int or a pair, got {padding!r}")
    Wd = _dilate(W, dilation)
    if groups == 1:
        return conv2d(x, Wd, b, stride, padding)
    step, ostep = x.shape[1] // groups, oc // groups
    parts = [
        conv2d(x[:, g * step:(g + 1) * step], Wd[g * ostep:(g + 1) * ostep],
               None if b is None else b[g * ostep:(g + 1) * ostep], stride, padding)
        for g in range(groups)
    ]
    return cat(parts, axis=1)


def _conv1d_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 2, 7)), n(size=(3, 2, 3)), n(size=(3,)), note="plain"),
        sample(n(size=(1, 4, 9)), n(size=(4, 2, 2)), None, stride=2, padding=1, dilation=2, groups=2,
               note="stride, padding, dilation, groups"),
        sample(n(size=(1, 2, 6)), n(size=(2, 2, 4)), n(size=(2,)), padding="same", note="same, even kernel"),
    ]


@register("conv1d", samples=_conv1d_samples)
def conv1d(x: Tensor, W: Tensor, b: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation (PyTorch's ``conv1d``), run as ``conv2d`` over an axis of height 1.

    Args:
        x: ``(N, C, L)``, floating. W: ``(OC, C/groups, K)``. b: ``(OC,)`` or None.
        stride, padding, dilation: ints (or 1-tuples); padding also ``"same"``/``"valid"``.
        groups: channel groups, dividing ``C`` and ``OC``.

    Returns:
        ``(N, OC, (L + 2p - d(K-1) - 1) // s + 1)``.

    Raises:
        ShapeError: x not 3-D, W not 3-D, channel mismatch. ValueError: bad geometry or groups.
    """
    op = "conv1d"
    _check_operands(op, x, W, 3, "x (N, C, L) and W (OC, C/groups, K)")

    def one(v: Any, name: str) -> Any:
        if isinstance(v, str):
            return v
        v = v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
        return (1 if name != "padding" else 0, _k.pair(v, name, op=op)[0])

    args = (one(stride, "stride"), one(padding, "padding"), one(dilation, "dilation"), groups)
    try:
        y = conv2d_general(x.unsqueeze(2), W.unsqueeze(2), b, *args)
    except (ShapeError, DTypeError, ValueError, TypeError) as e:  # name the op the caller used
        raise type(e)(f"{op} (x {tuple(x.shape)}, W {tuple(W.shape)}; run as conv2d over a height-1 axis): {e}") \
            from None
    return y.squeeze(2)


def _conv_transpose_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 3, 3, 4)), n(size=(3, 2, 3, 2)), n(size=(2,)), note="plain"),
        sample(n(size=(1, 2, 3, 3)), n(size=(2, 3, 3, 3)), n(size=(3,)), stride=2, padding=1, output_padding=1,
               note="stride 2, padding, output_padding"),
        sample(n(size=(1, 4, 3, 2)), n(size=(4, 1, 2, 2)), None, stride=(2, 1), dilation=2, groups=2,
               note="dilation, groups"),
    ]


@register("conv_transpose2d", samples=_conv_transpose_samples)
def conv_transpose2d(x: Tensor, W: Tensor, b: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution (PyTorch's ``conv_transpose2d``): the adjoint of ``conv2d`` in ``x``.

    Args:
        x: ``(N, C_in, H, W)``, floating.
        W: ``(C_in, C_out/groups, KH, KW)`` (PyTorch's layout), same dtype.
        b: ``(C_out,)`` or None.
        stride, padding, output_padding, dilation: ints or pairs; ``output_padding`` adds rows and
            columns at the bottom/right and must be smaller than the stride.
        groups: channel groups, dividing ``C_in`` and ``C_out``.

    Returns:
        ``(N, C_out, OH, OW)``, ``OH = (H - 1) sh - 2 ph + dh (KH - 1) + oph + 1``.
        Backward: ``gx = conv2d(gy, W)``, ``gW`` the weight gradient of that convolution.

    Raises:
        ShapeError: wrong ranks, channel or bias mismatch, an empty output.
        ValueError / DTypeError: bad geometry or groups; mixed dtypes.
    """
    op = "conv_transpose2d"
    _check_operands(op, x, W, 4, "x (N, C_in, H, W) and W (C_in, C_out/groups, KH, KW)")
    if x.dtype != W.dtype or (b is not None and b.dtype != x.dtype):
        raise DTypeError(f"{op}: expected x, W and b of one dtype, got {x.dtype}, {W.dtype}"
                         f"{'' if b is None else ', ' + str(b.dtype)}")
    stride = _k.pair(stride, "stride", op=op)
    padding = _k.pair(padding, "padding", op=op)
    output_padding = _k.pair(output_padding, "output_padding", op=op)
    dilation = _dilation(op, dilation)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        # PyTorch also accepts output_padding < dilation; the col2im geometry here needs < stride.
        raise ValueError(
            f"{op}: expected output_padding smaller than the stride, got output_padding {output_padding}, "
            f"stride {stride}"
        )
    cin, cog = W.shape[:2]
    groups = _groups(op, groups, cin, cin)
    if x.shape[1] != cin:
        raise ShapeError(f"{op}: expected x with {cin} channels for W of shape {tuple(W.shape)}, "
                         f"got x of shape {tuple(x.shape)}")
    cout = cog * groups
    if b is not None:
        _check_tensor(op, "b", b)
        if tuple(b.shape) != (cout,):
            raise ShapeError(f"{op}: expected b of shape ({cout},), got {tuple(b.shape)}")
    Wd = _dilate(W, dilation)
    kh, kw = Wd.shape[2:]
    n, _, h, w = x.shape
    oh = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    ow = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    if oh < 1 or ow < 1:
        raise ShapeError(f"{op}: the output would be empty ({oh}, {ow}) for x of shape {tuple(x.shape)}, "
                         f"kernel {(kh, kw)}, stride {stride}, padding {padding}")
    step = cin // groups
    parts = [
        TransposedConvolution2d.apply(x[:, g * step:(g + 1) * step] if groups > 1 else x,
                                      Wd[g * step:(g + 1) * step] if groups > 1 else Wd,
                                      x_shape=(n, cog, oh, ow), stride=stride, padding=padding)
        for g in range(groups)
    ]
    y = parts[0] if groups == 1 else cat(parts, axis=1)
    return y if b is None else y + b.reshape(1, cout, 1, 1)


_conv.GENERAL_PATHS["conv2d"] = conv2d_general
