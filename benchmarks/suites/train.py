"""``train``: one optimizer step (forward, cross-entropy, backward, update) of each network.

TwoLayerNet (784-50-10) and the 784-512-512-10 MLP use SGD (the book's ch. 5
setting); SimpleConvNet and DeepConvNet use Adam (ch. 7-8).  Batch 100, float32,
except the MLP at batch 128 (the batch its speed target in issue 4 is set at).
"""

from __future__ import annotations

from benchmarks.suites import work

TITLE = "Training step (float32)"
DISPLAY = "throughput"
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
            "x": x if x is not None else batch, "work": work.train_work(model, batch, tuple(input_dim))}


def cases(quick: bool) -> list[dict]:
    """All four networks at batch 100, the MLP at 128 (quick: smaller batches for the conv nets)."""
    if quick:
        return [train_case("two_layer_net", 100), train_case("simple_convnet", 32),
                train_case("deep_convnet", 8)]
    return [train_case(m, 128 if m == "mlp" else 100) for m in OPTIMIZER]
