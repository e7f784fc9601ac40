"""``infer``: forward passes in eval mode under ``no_grad``: latency, throughput, and a whole test-set pass.

Three kinds of case per network: one batch of 1 (latency), one batch of 100
(throughput), and ``eval 10k b1000``: a full evaluation pass over 10,000
images in 10 batches of 1,000, the size of the (Fashion-)MNIST test set, so
its throughput is images per second over the whole set.  The images are
synthetic (seeded, like every other case): no target's speed depends on the
pixel values, and the benchmark runs without the dataset on disk.
"""

from __future__ import annotations

from benchmarks.suites import work

TITLE = "Inference (float32, eval mode, no graph)"
DISPLAY = "throughput"
NOTE = ("`<model> eval N bB`: one call is an eval pass over N images in batches of B (`eval 10k b1000`: the "
        "Fashion-MNIST test set's 10,000 images in 10 batches of 1,000); the images are synthetic (seeded "
        "standard-normal, like every case: no target's speed depends on pixel values), made into tensors "
        "before timing.")
MODELS = ("two_layer_net", "mlp", "simple_convnet", "deep_convnet")
TEST_SET = 10_000  # images in the MNIST / Fashion-MNIST test set
EVAL_BATCH = 1_000


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


def _count(n: int) -> str:
    """``10k`` for 10,000; plain digits when not a whole number of thousands."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def eval_case(model: str, total: int = TEST_SET, batch: int = EVAL_BATCH) -> dict:
    """One call is an eval pass over ``total`` images in batches of ``batch`` (the last may be smaller).

    Targets split the images into batches outside the timed region and loop
    over them inside the step, as an evaluation loop over a loaded test set does.
    """
    if total < 1 or batch < 1:
        raise ValueError(f"eval_case needs total >= 1 and batch >= 1, got total={total}, batch={batch}")
    params = {"model": model, "batch": batch, "total": total, "input_dim": [1, 28, 28]}
    return {"name": f"{model} eval {_count(total)} b{batch}", "kind": "infer", "params": params, "items": total,
            "item": "sample", "group": "eval", "x": total, "work": work.infer_work(model, total)}


def cases(quick: bool) -> list[dict]:
    """Every network at batch 1 and 100 and over the 10k test set (quick: three small cases)."""
    if quick:
        return [infer_case("two_layer_net", 1), infer_case("simple_convnet", 32),
                eval_case("simple_convnet", total=1_000, batch=250)]
    return [infer_case(m, b) for m in MODELS for b in (1, 100)] + [eval_case(m) for m in MODELS]
