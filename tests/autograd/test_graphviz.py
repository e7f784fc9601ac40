"""to_dot structure for the book's shopping graph and a SimpleConvNet step; plot_graph; docs/graphs.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ember as em
import ember.nn.functional as F
from ember.autograd import graphviz

ROOT = Path(__file__).resolve().parents[2]


def parse(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """DOT text -> ({node id: label}, [(src, dst)])."""
    nodes = {m.group(1): m.group(2) for m in re.finditer(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)}
    edges = re.findall(r"^  (n\d+) -> (n\d+);", dot, re.M)
    return nodes, edges


def shopping():
    apple, apple_num = em.tensor(100.0, requires_grad=True), em.tensor(2.0, requires_grad=True)
    orange, orange_num = em.tensor(150.0, requires_grad=True), em.tensor(3.0, requires_grad=True)
    tax = em.tensor(1.1, requires_grad=True)
    apple_price = apple * apple_num
    all_price = apple_price + orange * orange_num
    price = all_price * tax
    names = {"apple": apple, "apple_num": apple_num, "orange": orange, "orange_num": orange_num, "tax": tax,
             "apple_price": apple_price, "all_price": all_price}
    return price, names


def by_label(nodes, text):
    found = [n for n, label in nodes.items() if label.startswith(text)]
    assert len(found) == 1, (text, nodes)
    return found[0]


def test_shopping_graph_structure():
    price, names = shopping()
    nodes, edges = parse(em.autograd.to_dot(price, params=names))
    ops = [label.split("\\n")[0] for label in nodes.values() if "grad for" in label]
    assert sorted(ops) == ["Add", "Mul", "Mul", "Mul"]
    assert len(nodes) == 4 + 5 + 4  # ops, leaves, op outputs (incl. the unnamed orange price)
    assert len(edges) == 4 * 2 + 4  # two inputs and one output per op
    leaf = {k: by_label(nodes, k + "\\n") for k in ("apple", "apple_num", "orange", "orange_num", "tax")}
    ap = by_label(nodes, "apple_price\\n")
    allp = by_label(nodes, "all_price\\n")
    out = by_label(nodes, "output\\n")
    mul_apple = next(d for s, d in edges if s == leaf["apple"])
    assert (leaf["apple_num"], mul_apple) in edges and (mul_apple, ap) in edges
    add = next(d for s, d in edges if s == ap)
    assert nodes[add].startswith("Add\\ngrad for inputs 0, 1") and (add, allp) in edges
    final = next(d for s, d in edges if s == allp)
    assert (leaf["tax"], final) in edges and (final, out) in edges
    assert all(label.endswith("() float32") for n, label in nodes.items() if "grad for" not in label)


def test_simple_convnet_step_structure():
    em.manual_seed(0)
    model = em.models.SimpleConvNet(input_dim=(1, 12, 12), conv_param={"filter_num": 4}, hidden_size=6)
    x, t = em.randn(3, 1, 12, 12), em.randint(0, 10, (3,))
    loss = F.cross_entropy(model(x), t)
    dot = em.autograd.to_dot(loss, params=model, title="SimpleConvNet step")
    nodes, edges = parse(dot)
    ops = [label.split("\\n")[0] for label in nodes.values() if "grad for" in label]
    # conv1 + relu1 and affine1 + relu2 run as fused nodes (ember.nn.fusion)
    assert len(ops) == 6 and ops.count("RectifiedAffine") == 1 and ops.count("RectifiedConvolution2d") == 1
    assert "Rectifier" not in ops
    params = {name: by_label(nodes, name + "\\n") for name, _ in model.named_parameters()}
    assert nodes[params["conv1.weight"]] == "conv1.weight\\n(4, 1, 5, 5) float32"
    conv = next(d for s, d in edges if s == params["conv1.weight"])
    assert nodes[conv].endswith("grad for inputs 1, 2")  # the images need no gradient
    data = [s for s, d in edges if d == conv and "no grad" in nodes[s]]
    assert len(data) == 1
    loss_op = next(s for s, d in edges if nodes[d].startswith("output"))
    assert "grad for input 0" in nodes[loss_op]
    assert sum(1 for s, d in edges if d == loss_op and "no grad" in nodes[s]) == 1  # the labels
    assert "(3, 4, 8, 8) float32" in dot and 'label="SimpleConvNet step"' in dot
    # after backward the graph can still be drawn, unchanged
    loss.backward()
    assert em.autograd.to_dot(loss, params=model, title="SimpleConvNet step") == dot


def test_to_dot_multi_output_leaf_and_errors():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse(em.autograd.to_dot(x))
    assert list(nodes.values()) == ["(2,) float32"] and edges == []
    nodes, edges = parse(em.autograd.to_dot([x * 2, x + 1]))
    assert sum(1 for v in nodes.values() if v.startswith("output")) == 2
    assert sum(1 for v in nodes.values() if v.endswith("no grad")) == 2  # the Python scalars 2 and 1
    assert len(edges) == 6 and len(nodes) == 7  # x shared by both ops
    with pytest.raises(TypeError, match="to_dot"):
        em.autograd.to_dot("x")


def test_plot_graph_renders_png(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz dot program is not installed (apt-get install graphviz)")
    price, names = shopping()
    path = em.autograd.plot_graph(price, str(tmp_path / "g.png"), params=names)
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_plot_graph_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    price, _ = shopping()
    with pytest.raises(RuntimeError, match="apt-get install graphviz.*pip install graphviz"):
        em.autograd.plot_graph(price, str(tmp_path / "g.png"))
    assert list(tmp_path.iterdir()) == []


def test_docs_graphs_python_blocks_run():
    text = (ROOT / "docs" / "graphs.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    for image in re.findall(r"\]\((images/[^)]+)\)", text):
        assert (ROOT / "docs" / image).is_file()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
