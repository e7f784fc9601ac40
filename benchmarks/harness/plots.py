"""PNG plots of a results document (matplotlib, Agg backend: no display needed).

* ``scaling``: throughput vs batch size and vs image size per target (log
  axes), and host/device memory of one step vs batch size;
* ``overhead``: µs per op per target (bars);
* other suites: median time (ops) or throughput (train, infer, precision) per
  case, one bar per target, CPU targets in blues/greens and GPU targets in
  reds, so CPU vs GPU reads at a glance.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CPU_COLORS = ["#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#8c564b", "#7f7f7f"]
GPU_COLORS = ["#d62728", "#ff7f0e", "#e377c2", "#bcbd22", "#a05050", "#ff9896"]


def _colors(doc: dict) -> dict[str, str]:
    """A colour per target: blues/greens for CPU, reds for GPU."""
    out, ci, gi = {}, 0, 0
    for t in doc["targets"]:
        if t["device"] == "cuda":
            out[t["name"]], gi = GPU_COLORS[gi % len(GPU_COLORS)], gi + 1
        else:
            out[t["name"]], ci = CPU_COLORS[ci % len(CPU_COLORS)], ci + 1
    return out


def _ok(doc: dict) -> dict:
    """Successful results keyed by (case, target)."""
    return {(r["case"], r["target"]): r for r in doc["results"] if r["status"] == "ok"}


def _targets(doc: dict, ok: dict) -> list[str]:
    """Targets with at least one successful result."""
    return [t["name"] for t in doc["targets"] if any((c["name"], t["name"]) in ok for c in doc["cases"])]


def _bars(ax: plt.Axes, doc: dict, value, ylabel: str, log: bool) -> None:
    """Grouped bars: one group per case, one bar per target."""
    ok, colors = _ok(doc), _colors(doc)
    targets = _targets(doc, ok)
    cases = [c for c in doc["cases"] if any((c["name"], t) in ok for t in targets)]
    width = 0.8 / max(1, len(targets))
    for i, t in enumerate(targets):
        xs, ys = [], []
        for j, c in enumerate(cases):
            r = ok.get((c["name"], t))
            if r is not None:
                xs.append(j + (i - (len(targets) - 1) / 2) * width)
                ys.append(value(r, c))
        ax.bar(xs, ys, width, label=t, color=colors[t])
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c["name"] for c in cases], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _lines(ax: plt.Axes, doc: dict, group: str, value, xlabel: str, ylabel: str) -> None:
    """One line per target over the cases of ``group`` (log-log)."""
    ok, colors = _ok(doc), _colors(doc)
    cases = [c for c in doc["cases"] if c.get("group") == group]
    drawn = False
    for t in _targets(doc, ok):
        pts = [(c["x"], value(ok[(c["name"], t)], c)) for c in cases if (c["name"], t) in ok]
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=t, color=colors[t])
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _memory(r: dict, c: dict) -> float | None:
    """Memory of one call in MiB (device peak if any, else host), or None."""
    mem = r.get("memory") or {}
    nbytes = mem.get("device_peak_bytes") or mem.get("host_step_bytes")
    return nbytes / 2**20 if nbytes else None


def plot(doc: dict, path: Path) -> Path:
    """Draw the suite's figure into ``path`` (PNG) and return the path."""
    suite = doc["suite"]
    throughput = lambda r, c: r["items_per_s"]  # noqa: E731
    if suite == "scaling":
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
        _lines(axes[0], doc, "batch", throughput, "batch size", "samples / s")
        _lines(axes[1], doc, "image", throughput, "image side (pixels)", "samples / s")
        _lines(axes[2], doc, "batch", _memory, "batch size", "memory of one step (MiB)")
        axes[0].set_title("throughput vs batch size")
        axes[1].set_title("throughput vs image size")
        axes[2].set_title("memory vs batch size")
    else:
        fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(doc["cases"]) + 3), 5))
        if suite == "overhead":
            _bars(ax, doc, lambda r, c: r["per_item_s"] * 1e6, "µs per op (median)", log=False)
        elif doc.get("display") == "throughput":
            _bars(ax, doc, throughput, "samples / s (median, log)", log=True)
        else:
            _bars(ax, doc, lambda r, c: r["stats"]["median"] * 1e3, "ms per call (median, log)", log=True)
        ax.set_title(doc["title"])
    fig.suptitle(f"{doc['machine']['cpu']}, {doc['created']}" + (" (--quick)" if doc["quick"] else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
