"""``infer``: a forward pass in eval mode under ``no_grad``: latency (batch 1) and throughput (batch 100)."""

from __future__ import annotations

from benchmarks.suites import work

TITLE = "Inference (float32, eval mode, no graph)"
DISPLAY = "throughput"
MODELS = ("two_layer_net", "mlp", "simple_convnet", "deep_convnet")


def infer_case(model: str, batch: int, precision: str | None = None, group: str = "model",
               prefix: str = "") -> dict:
    """An inference case; also used by the precision suite (``prefix`` keeps names unique)."""
    params = {"model": model, "batch": batch, "input_dim": [1, 28, 28]}
    name = f"{prefix}{model} b{batch}"
    if precision:
        params["precision"] = precision
        name += f" {precision}"
    return {"name": name, "kind": "infer", "params": params, "items": batch, "item": "sample", "group": group,
            "x": batch, "work": work.infer_work(model, batch)}


def cases(quick: bool) -> list[dict]:
    """Every network at batch 1 and 100 (quick: two of them)."""
    if quick:
        return [infer_case("two_layer_net", 1), infer_case("simple_convnet", 32)]
    return [infer_case(m, b) for m in MODELS for b in (1, 100)]
