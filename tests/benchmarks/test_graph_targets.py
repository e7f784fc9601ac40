"""The graphed training targets: ``torch-cuda-graph`` next to ``ember-cuda-graph``, named and skipped honestly.

No GPU here: the spec table, and the torch graph target refusing what it cannot
run with the reason (the ember side runs on the fake device in
tests/backends/test_cuda_graphs_fake_cpu.py).
"""

from __future__ import annotations

import pytest

from benchmarks.targets import TARGETS
from benchmarks.targets.base import Skip

CASE = {"kind": "train", "params": {"model": "two_layer_net", "batch": 4, "input_dim": (1, 4, 4), "hidden": 6,
                                    "classes": 3, "optimizer": "adam"}}


def test_graph_targets_compare_float32_with_tf32_off():
    torch_graph, ember_graph = TARGETS["torch-cuda-graph"], TARGETS["ember-cuda-graph"]
    assert torch_graph.device == ember_graph.device == "cuda"
    assert torch_graph.options == {"tf32": "off", "graph": True} and ember_graph.options == {"graph": True}
    assert ember_graph.env == {"CUPY_TF32": "0"}


def test_torch_graph_target_skips_without_cuda_and_for_amp():
    pytest.importorskip("torch")
    from benchmarks.targets.torch_target import TorchTarget

    spec = TARGETS["torch-cuda-graph"]
    with pytest.raises(Skip, match="needs a CUDA device"):
        TorchTarget(spec.name, device="cpu", **spec.options).build(CASE)
    amp = {"kind": "train", "params": {**CASE["params"], "precision": "amp"}}
    target = TorchTarget(spec.name, device="cpu", **spec.options)
    target.device = "cuda"  # as on a GPU machine: AMP is refused before any CUDA call
    with pytest.raises(Skip, match="GradScaler.step reads found_inf on the host"):
        target._graphed_train(amp["params"], None, None, None, True, "amp")
