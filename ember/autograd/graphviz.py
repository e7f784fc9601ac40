"""The recorded graph as a picture: ``to_dot`` writes Graphviz DOT text, ``plot_graph`` renders it.

The book draws computational graphs as tensors and the ops between them
(DeZero's ``plot_dot_graph``).  Here each op is a box labelled with its name
and which of its inputs need a gradient; each tensor is an ellipse with its
shape and dtype: leaves (filled, named when a name is known, e.g. from a
module's ``named_parameters()``), the op outputs that feed later ops, and the
tensor drawn from.  An input that carries no gradient (a constant, data) is a
dashed ``no grad`` node.  Edges run input -> op -> output.  The walk is
iterative and reads only the graph links, so drawing never changes a graph
and works after ``backward`` too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Iterable

from ember.autograd.tensor import Tensor

_OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"'
_LEAF_STYLE = 'shape=ellipse, style=filled, fillcolor="#fce5cd"'
_PARAM_STYLE = 'shape=ellipse, style=filled, fillcolor="#f9cb9c"'
_TENSOR_STYLE = "shape=ellipse"
_CONST_STYLE = 'shape=ellipse, style=dashed, fontcolor="#666666"'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _describe(shape: Any, dtype: Any) -> str:
    return f"{tuple(shape)} {dtype}"


def _names(params: Any) -> dict[Any, str]:
    """Names from a Module, ``named_parameters()`` pairs or a ``{name: tensor}`` dict.

    Keys: ``id(leaf)`` for leaves, ``(id(grad_fn), output index)`` for other tensors.
    """
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif isinstance(params, dict):
        params = params.items()
    names: dict[Any, str] = {}
    for name, t in params:
        names[id(t) if t.grad_fn is None else (id(t.grad_fn), t._out_idx)] = name
    return names


def to_dot(output: Tensor | Iterable[Tensor], params: Any = None, title: str | None = None) -> str:
    """Graphviz DOT text of the graph that produced ``output``.

    Args:
        output: a Tensor, or several, whose graph to draw.
        params: names for leaves: a Module, its ``named_parameters()``, or a ``{name: tensor}`` dict.
        title: a label drawn above the graph.

    Returns:
        DOT source (``digraph``), e.g. for ``dot -Tpng``.

    Raises:
        TypeError: ``output`` is not a Tensor or a list of Tensors.
    """
    outputs = [output] if isinstance(output, Tensor) else list(output)
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError(f"to_dot: expected a Tensor or a list of Tensors, got {type(output).__name__}")
    names = _names(params)
    lines = ["digraph ember_graph {", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    if title:
        lines.append(f"  labelloc=t; label={_quote(title)};")
    ids: dict[Any, str] = {}  # key -> DOT node id; keys: ("op", id(fn)), ("out", id(fn), i), ("leaf", id(t))
    keep: list[Any] = []  # objects whose id() is a key, kept alive while drawing

    def node(key: Any, label: str, style: str, obj: Any) -> str:
        nid = ids.get(key)
        if nid is None:
            nid = ids[key] = f"n{len(ids)}"
            keep.append(obj)
            lines.append(f"  {nid} [label={_quote(label)}, {style}];")
        return nid

    def leaf_node(t: Tensor) -> str:
        name = names.get(id(t))
        label = (name + "\n" if name else "") + _describe(t.shape, t.dtype)
        return node(("leaf", id(t)), label, _PARAM_STYLE if name else _LEAF_STYLE, t)

    def output_node(fn: Any, i: int, label_prefix: str = "") -> str:
        shape, dtype = fn._out_meta[i]
        suffix = f"[{i}] " if len(fn._out_meta) > 1 else ""
        name = names.get((id(fn), i))
        label = label_prefix + (name + "\n" if name else "") + suffix + _describe(shape, dtype)
        return node(("out", id(fn), i), label, _TENSOR_STYLE, fn)

    def op_node(fn: Any) -> str:
        needs = [k for k, n in enumerate(getattr(fn, "needs_input_grad", ())) if n]
        label = f"{type(fn).__name__}\ngrad for input " + ", ".join(map(str, needs))
        if len(needs) > 1:
            label = label.replace("input ", "inputs ", 1)
        return node(("op", id(fn)), label, _OP_STYLE, fn)

    edges: list[str] = []
    stack = []
    seen: set[int] = set()
    for k, t in enumerate(outputs):
        prefix = "output\n" if len(outputs) == 1 else f"output {k}\n"
        if t.grad_fn is None:
            leaf_node(t)
            continue
        out_id = output_node(t.grad_fn, t._out_idx, prefix)
        edges.append(f"  {op_node(t.grad_fn)} -> {out_id};")
        if id(t.grad_fn) not in seen:
            seen.add(id(t.grad_fn))
            stack.append(t.grad_fn)
    while stack:
        fn = stack.pop()
        op_id = op_node(fn)
        for k, edge in enumerate(fn._edges):
            if edge is None:
                src = node(("const", id(fn), k), f"input {k}\nno grad", _CONST_STYLE, fn)
            elif type(edge) is tuple:
                parent, i = edge
                src = output_node(parent, i)
                edges.append(f"  {op_node(parent)} -> {src};")
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append(parent)
            else:
                src = leaf_node(edge)
            edges.append(f"  {src} -> {op_id};")
    for e in dict.fromkeys(edges):  # each edge once, in the order found
        lines.append(e)
    lines.append("}")
    return "\n".join(lines) + "\n"


_INSTALL_HINT = (
    "install the Graphviz 'dot' program (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
    "graphviz) and optionally the Python package (pip install graphviz); or write the text of "
    "ember.autograd.to_dot(...) to a .dot file and render it elsewhere"
)


def plot_graph(output: Tensor | Iterable[Tensor], path: str, params: Any = None, title: str | None = None) -> str:
    """Render ``to_dot(output)`` to an image whose format is ``path``'s extension (png, svg, pdf, ...).

    Uses the ``dot`` program, found on PATH or through the ``graphviz`` Python package.
    The file is written atomically.

    Returns:
        ``path``.

    Raises:
        RuntimeError: Graphviz is not installed (the message says how to install it), or ``dot`` failed.
    """
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    source = to_dot(output, params=params, title=title)
    image = _render(source, fmt)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ember-graph-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(image)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; an image is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _render(source: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is not None:
        done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"plot_graph: dot -T{fmt} failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout
    try:
        import graphviz
    except ImportError:
        raise RuntimeError(f"plot_graph: Graphviz is not available; {_INSTALL_HINT}") from None
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except Exception as e:  # graphviz.ExecutableNotFound and friends
        raise RuntimeError(f"plot_graph: rendering with the graphviz package failed ({e}); {_INSTALL_HINT}") from None
