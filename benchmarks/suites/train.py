"""``train``: one optimizer step (forward, cross-entropy, backward, update) of each network.

TwoLayerNet (784-50-10) and the 784-512-512-10 MLP use SGD (the book's ch. 5
setting); SimpleConvNet and DeepConvNet use Adam (ch. 7-8).  Batch 100, float32,
except the MLP at batch 128 (the batch its speed target in issue 4 is set at).
"""

from __future__ import annotations

from benchmarks.suites import work

TITLE = "Training step (float32)"
DISPLAY = "throughput"
# Each sample runs training steps back to back for at least this long.  The runner
# idles 0.2 s before every sample (``--settle``); on the 2-vCPU development VM the
# first ~40 ms after such a pause run slow for a two-thread process (ember-numba
# MLP step, batch 128: 8-9 ms for steps 2-6, 5.5-6 ms from step 7 on; PyTorch
# 5.8 ms, then 5.0 ms).  A 20 ms sample would be all ramp; a training loop never
# pauses, so samples span a quarter of a second and the ramp is averaged away.
TRAIN_MIN_SAMPLE_S = 0.25
OPTIMIZER = {"two_layer_net": "sgd", "mlp": "sgd", "simple_convnet": "adam", "deep_convnet": "adam"}


def train_case(model: str, batch: int, input_dim: tuple = (1, 28, 28), precision: str | None = None,
               group: str = "model", x: float | None = None, prefix: str = "") -> dict:
    """A training-step case; also used by the scaling and precision suites (``prefix`` keeps names unique)."""
    params = {"model": model, "batch": batch, "input_dim": list(input_dim), "optimizer": OPTIMIZER[model]}
    name = f"{prefix}{model} b{batch}"
    if tuple(input_dim) != (1, 28, 28) or group == "image":
        name += f" {input_dim[1]}x{input_dim[2]}"
    if precision:
        params["precision"] = precision
        name += f" {precision}"
    return {"name": name, "kind": "train", "params": params, "items": batch, "item": "sample", "group": group,
            "x": x if x is not None else batch, "work": work.train_work(model, batch, tuple(input_dim)),
            "min_sample_s": TRAIN_MIN_SAMPLE_S}


def cases(quick: bool) -> list[dict]:
    """All four networks at batch 100, the MLP at 128 (quick: smaller batches for the conv nets)."""
    if quick:
        return [train_case("two_layer_net", 100), train_case("simple_convnet", 32),
                train_case("deep_convnet", 8)]
    return [train_case(m, 128 if m == "mlp" else 100) for m in OPTIMIZER]
