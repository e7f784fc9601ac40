"""``scaling``: SimpleConvNet training throughput vs batch size (1...1024) and vs image size.

Every case also records the host (or device) memory one step needs, which
gives the memory-vs-batch-size curve from the same runs.
"""

from __future__ import annotations

from benchmarks.suites.train import train_case

TITLE = "Scaling of a SimpleConvNet training step (float32)"
DISPLAY = "throughput"


def cases(quick: bool) -> list[dict]:
    """Batch sweep at 28x28, then an image-size sweep at a fixed batch."""
    batches = (1, 8, 64) if quick else (1, 4, 16, 64, 256, 1024)
    sizes, size_batch = ((28, 56), 4) if quick else ((28, 56, 112), 16)
    out = [train_case("simple_convnet", b, group="batch") for b in batches]
    out += [train_case("simple_convnet", size_batch, (1, s, s), group="image", x=s) for s in sizes]
    return out
