"""``precision``: the same SimpleConvNet step and forward in float64, float32, float16 and AMP.

float16 means the whole model in half precision (the book's ch. 8 bit
reduction); ``amp`` is float16 autocast with float32 master weights and a
GradScaler.  Targets without autocast skip the AMP cases with the reason.
"""

from __future__ import annotations

from benchmarks.suites.infer import infer_case
from benchmarks.suites.train import train_case

TITLE = "Precision: float64 / float32 / float16 / AMP (SimpleConvNet)"
DISPLAY = "throughput"
PRECISIONS = ("float64", "float32", "float16", "amp")


def cases(quick: bool) -> list[dict]:
    """Training steps in each precision, plus inference in the full run."""
    batch = 8 if quick else 32  # NumPy float16 has no BLAS: a CPU float16 step at batch 100 takes seconds
    out = [train_case("simple_convnet", batch, precision=p, group="train", prefix="train ") for p in PRECISIONS]
    if not quick:
        out += [infer_case("simple_convnet", batch, precision=p, group="infer", prefix="infer ")
                for p in PRECISIONS]
    return out
