"""Probe: a register-blocked direct 3x3 convolution forward written in Numba, against ember's per-tap GEMMs.

Issue 20's last CPU lever for DeepConvNet was a direct convolution that never writes columns.
This builds the textbook form of one (generated source so the block sizes are constants): for a
block of ``positions`` output pixels of one row and ``channels`` output channels, one scalar
accumulator each, summed over input channels and the nine taps; each step loads ``channels``
contiguous weights and ``positions`` input values and does ``positions * channels``
multiply-adds. It times that against ``conv_shifted.forward_slice`` (one OpenBLAS GEMM per tap)
on one thread, on DeepConvNet's stride-1 layer shapes, and reports GFLOP/s and the relative
difference between the two outputs.  ``--asm`` counts the FMA instructions Numba emitted.

Usage: ``python -m benchmarks.direct_conv_probe [--positions 4] [--channels 8] [--batch 50] [--asm]``
(run with ``NUMBA_NUM_THREADS=1``). Results: ``docs/engineering/cpu-round8.md``, "DeepConvNet".
"""

from __future__ import annotations

import argparse
import re

import numba
import numpy

from benchmarks.harness.timing import median_seconds
from ember.backends.numba import conv_shifted

# (input channels, input height = width, output channels, padding): DeepConvNet's conv2, conv4-conv6
LAYERS = [(16, 28, 16, 1), (32, 14, 32, 2), (32, 8, 64, 1), (64, 8, 64, 1)]


def blocked_kernel(positions: int, channels: int):
    """A compiled ``kern(xp, Wr, y, C, Hp, Wp, OH, OW, OC)`` over flat arrays (OW % positions == 0)."""
    acc = [f"a{p}_{o}" for p in range(positions) for o in range(channels)]
    body = ["def kern(xp, Wr, y, C, Hp, Wp, OH, OW, OC):",
            f"    for ob in range(0, OC, {channels}):",
            "        for oy in range(OH):",
            f"            for ox0 in range(0, OW, {positions}):",
            "                " + " = ".join(acc) + " = numpy.float32(0)",
            "                for c in range(C):",
            "                    for ky in range(3):",
            "                        row = (c * Hp + oy + ky) * Wp + ox0",
            "                        for kx in range(3):",
            "                            wb = ((c * 3 + ky) * 3 + kx) * OC + ob"]
    body += [f"                            w{o} = Wr[wb + {o}]" for o in range(channels)]
    body += [f"                            x{p} = xp[row + {p} + kx]" for p in range(positions)]
    body += [f"                            a{p}_{o} += w{o} * x{p}" for p in range(positions) for o in range(channels)]
    body += [f"                y[((ob + {o}) * OH + oy) * OW + ox0 + {p}] = a{p}_{o}"
             for p in range(positions) for o in range(channels)]
    namespace = {"numpy": numpy}
    exec("\n".join(body), namespace)  # noqa: S102 - generated from the constants above only
    return numba.njit(fastmath=True, nogil=True, boundscheck=False)(namespace["kern"])


def direct_forward(kern, x: numpy.ndarray, W: numpy.ndarray, pad: int) -> numpy.ndarray:
    """conv2d of ``x`` (N, C, H, W) with 3x3 ``W``, stride 1, no bias, through ``kern`` image by image."""
    n, c, h, w = x.shape
    oc = W.shape[0]
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    Wr = numpy.ascontiguousarray(W.transpose(1, 2, 3, 0)).reshape(-1)  # (C, 3, 3, OC): channels contiguous
    xp = numpy.zeros((c, h + 2 * pad, w + 2 * pad), numpy.float32)
    y = numpy.empty((n, oc, oh, ow), numpy.float32)
    for i in range(n):
        xp[:, pad:pad + h, pad:pad + w] = x[i]
        kern(xp.reshape(-1), Wr, y[i].reshape(-1), c, h + 2 * pad, w + 2 * pad, oh, ow, oc)
    return y


def per_tap_forward(x: numpy.ndarray, W: numpy.ndarray, pad: int) -> numpy.ndarray:
    """The same convolution through ember's per-tap GEMM slice (one thread)."""
    n, c, h, w = x.shape
    oc = W.shape[0]
    taps = numpy.ascontiguousarray(numpy.transpose(W, (2, 3, 0, 1))).reshape(9, oc, c)
    y = numpy.empty((n, oc, h + 2 * pad - 2, w + 2 * pad - 2), numpy.float32)
    conv_shifted.forward_slice(x, taps, numpy.zeros(oc, numpy.float32), False, False, 3, 3, pad, pad, y)
    return y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=4)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--asm", action="store_true", help="count the FMA instructions of the compiled kernel")
    args = parser.parse_args(argv)
    kern = blocked_kernel(args.positions, args.channels)
    rng = numpy.random.default_rng(0)
    for c, hw, oc, pad in LAYERS:
        x = rng.normal(size=(args.batch, c, hw, hw)).astype(numpy.float32)
        W = rng.normal(size=(oc, c, 3, 3)).astype(numpy.float32)
        direct, reference = direct_forward(kern, x, W, pad), per_tap_forward(x, W, pad)
        rel = float(numpy.abs(direct - reference).max() / numpy.abs(reference).max())
        oh = hw + 2 * pad - 2
        flop = 2.0 * args.batch * oc * c * 9 * oh * oh
        t_direct = median_seconds(lambda: direct_forward(kern, x, W, pad), 7)
        t_taps = median_seconds(lambda: per_tap_forward(x, W, pad), 7)
        print(f"C{c} {hw}x{hw} -> OC{oc} pad {pad}: direct {1e3 * t_direct:7.2f} ms ({flop / t_direct / 1e9:5.1f} "
              f"GFLOP/s), per-tap GEMMs {1e3 * t_taps:6.2f} ms ({flop / t_taps / 1e9:5.1f} GFLOP/s), "
              f"max rel diff {rel:.1e}")
    if args.asm:
        asm = next(iter(kern.inspect_asm().values()))
        print("packed FMAs (ymm):", len(re.findall(r"vfmadd\w*ps\s+%ymm", asm)),
              "scalar FMAs:", len(re.findall(r"vfmadd\w*ss", asm)))


if __name__ == "__main__":
    main()
