"""``train_large``: training steps of the conv nets at batch 1000, where GPU tensor cores matter.

The same step as ``train`` (Adam), at a batch large enough that the GEMMs, not the launches,
set the time: the size at which AMP (float16 on tensor cores, the ``-amp`` targets) is
compared with float32 (the plain and ``-tf32`` targets).  Sized for a GPU: on CPU targets
one step takes seconds.
"""

from __future__ import annotations

from benchmarks.suites.train import train_case

TITLE = "Training step at batch 1000 (float32 and AMP targets)"
DISPLAY = "throughput"
NOTE = ("Batch 1000: the AMP targets (`ember-cuda-amp`, `torch-cuda-amp`) against the float32 ones "
        "(`ember-cuda`, `torch-cuda`, with and without TF32) at a size where tensor cores pay.")
BATCH = 1000
MODELS = ("simple_convnet", "deep_convnet")


def cases(quick: bool) -> list[dict]:
    """SimpleConvNet and DeepConvNet at batch 1000 (quick: a smoke size)."""
    batch = 16 if quick else BATCH
    return [train_case(m, batch, group="batch 1000") for m in MODELS]
