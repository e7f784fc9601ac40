"""Markdown report of one results document: medians with min-max, speed-ups, throughput, roofline, memory.

Memory appears twice: what one call allocates (``memory``) and the worker's
peak RSS over the whole case (``peak_rss_bytes``).

Speed-up against a baseline target is ``baseline median / target median``
(> 1: faster than the baseline), always computed from medians taken in the
same interleaved run, and again as the median of per-round ratios
(``stats.paired_ratio``), which a shared machine's slow phases move less.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness.stats import paired_ratio, ratio


def fmt_time(seconds: float | None) -> str:
    """A duration with a unit chosen by magnitude (``812 µs``, ``12.3 ms``, ``1.52 s``)."""
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A number with SI suffix (``1.2k``, ``3.4M``) or an em dash for missing values."""
    if x is None:
        return "—"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


def _index(doc: dict) -> tuple[list[str], dict]:
    """Targets that produced at least one number, and results keyed by (case, target)."""
    by = {(r["case"], r["target"]): r for r in doc["results"]}
    shown = [t["name"] for t in doc["targets"] if any(by.get((c["name"], t["name"]), {}).get("status") == "ok"
                                                       for c in doc["cases"])]
    return shown, by


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines: a header, right-aligned number columns, a blank line."""
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


def _cell_time(r: dict | None, per_item: bool, items: int) -> str:
    """``median (min–max)`` of a result, per call or per item (µs)."""
    if not r or r["status"] != "ok":
        return "—"
    s = r["stats"]
    scale = 1.0 / items if per_item else 1.0
    if per_item:
        return f"{s['median'] * scale * 1e6:.2f} ({s['min'] * scale * 1e6:.2f}–{s['max'] * scale * 1e6:.2f})"
    return f"{fmt_time(s['median'])} ({fmt_time(s['min'])}–{fmt_time(s['max'])})"


def _identity(machine: dict) -> str:
    """`` (family 23 model 49, no AVX-512)`` when the run recorded it (runs before 2026-12-04 did not)."""
    return f" ({machine['cpu_identity']})" if machine.get("cpu_identity") else ""


def _core(pool: dict) -> str:
    """`` (Haswell)``: the kernels a BLAS pool runs on, where threadpoolctl names them."""
    return f" ({pool['architecture']})" if pool.get("architecture") else ""


def _sample_seconds(doc: dict) -> str:
    """The shortest sample length of the run, or of its cases when they ask for longer ones."""
    base = float(doc["settings"].get("min_sample_s") or 0.0)
    if not doc["settings"].get("case_min_sample", False):
        return f"{base:g} s"
    lengths = {float(c.get("min_sample_s") or 0.0) for c in doc["cases"]} - {0.0}
    shown = sorted({max(base, x) for x in lengths} or {base})
    return " or ".join(f"{x:g} s" for x in shown)


def render(doc: dict) -> str:
    """The whole markdown report."""
    shown, by = _index(doc)
    cases = doc["cases"]
    per_item = doc.get("display") == "per_item_us"
    m, v, st = doc["machine"], doc["versions"], doc["settings"]
    lines = [f"# {doc['title']}", ""]
    lines.append(
        f"Suite `{doc['suite']}`{' (--quick)' if doc['quick'] else ''}, {doc['created']}, {doc['elapsed_s']:.0f} s. "
        f"Machine: {m['cpu']}{_identity(m)}, {m['cpu_count']} cpus; "
        f"load average {m.get('load_average_start')} at start, "
        f"{m.get('load_average_end')} at end; threads: {st['threads'] or 'default'}. "
        f"Python {v['python']}, NumPy {v['numpy']}, Numba {v.get('numba')}, PyTorch {v.get('torch') or '—'}. "
        f"Median of up to {st['repeats']} interleaved samples after {st['warmup']} warm-up calls; "
        f"each sample lasts at least {_sample_seconds(doc)}, after a {st.get('settle_s', 0) or 0:g} s pause."
    )
    lines.append("")
    if doc.get("note"):
        lines += [doc["note"], ""]
    what = "µs per op, median (min–max)" if per_item else "time per call, median (min–max)"
    lines += [f"## {what}", ""]
    lines += _table(["case", *shown], [[c["name"], *[_cell_time(by.get((c["name"], t)), per_item, c["items"])
                                                      for t in shown]] for c in cases])
    for base in doc.get("baselines", []):
        if base not in shown:
            continue
        others = [t for t in shown if t != base]
        if not others:
            continue
        lines += [f"## Speed-up vs {base} (its median / target median; > 1 is faster)", ""]
        rows = []
        for c in cases:
            b = by.get((c["name"], base))
            bmed = b["stats"]["median"] if b and b["status"] == "ok" else None
            row = [c["name"]]
            for t in others:
                r = by.get((c["name"], t))
                x = ratio(bmed, r["stats"]["median"] if r and r["status"] == "ok" else None)
                row.append("—" if x is None else f"{x:.2f}×")
            rows.append(row)
        lines += _table(["case", *others], rows)
        lines += _paired(cases, base, others, by)
    if doc.get("display") == "throughput":
        lines += ["## Throughput (samples/s)", ""]
        lines += _table(["case", *shown], [[c["name"], *[fmt_num((by.get((c["name"], t)) or {}).get("items_per_s"))
                                                          for t in shown]] for c in cases])
    lines += _roofline(doc, shown, by) + _first_and_memory(doc, shown, by) + _peak_rss(doc, shown, by)
    lines += _notes(doc, by)
    return "\n".join(lines).rstrip() + "\n"


def _paired(cases: list[dict], base: str, others: list[str], by: dict) -> list[str]:
    """The speed-ups again as ``stats.paired_ratio``: the median of per-round ratios of interleaved samples."""
    rows = []
    for c in cases:
        b = by.get((c["name"], base))
        row = [c["name"]]
        for t in others:
            r = by.get((c["name"], t))
            x = None
            if b and r and b["status"] == "ok" and r["status"] == "ok":
                x = paired_ratio(b["samples_s"], r["samples_s"])
            row.append("—" if x is None else f"{x:.2f}×")
        rows.append(row)
    if all(cell == "—" for row in rows for cell in row[1:]):
        return []
    return ["Paired (median over rounds of its sample / the target's sample of the same round, which cancels "
            "the slow phases a shared machine goes through):", ""] + _table(["case", *others], rows)


def _roofline(doc: dict, shown: list[str], by: dict) -> list[str]:
    """The roofline table for cases that carry FLOPs/bytes, and the measured ceilings."""
    work_cases = [c for c in doc["cases"] if c.get("work")]
    if not work_cases:
        return []
    lines = ["## Roofline: achieved FLOP/s (% of the measured GEMM rate); bytes/s (% of the copy bandwidth)", ""]
    rows = []
    for c in work_cases:
        row = [c["name"]]
        for t in shown:
            rf = (by.get((c["name"], t)) or {}).get("roofline") or {}
            cell = "—"
            if "achieved_flops_per_s" in rf:
                cell = f"{fmt_num(rf['achieved_flops_per_s'])}FLOP/s"
                if "fraction_of_gemm_peak" in rf:
                    cell += f" ({100 * rf['fraction_of_gemm_peak']:.0f}%)"
            if "achieved_bytes_per_s" in rf:
                cell += f"; {fmt_num(rf['achieved_bytes_per_s'])}B/s"
                if "fraction_of_copy_bandwidth" in rf:
                    cell += f" ({100 * rf['fraction_of_copy_bandwidth']:.0f}%)"
            row.append(cell)
        rows.append(row)
    lines += _table(["case", *shown], rows)
    peaks = [f"{t} {p['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s and {p['copy_bytes_per_s'] / 1e9:.1f} GB/s"
             for t, p in doc.get("peaks", {}).items() if t in shown and "gemm_flops_per_s" in p]
    ceilings = [f"{d}: GEMM {c['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s, copy {c['copy_bytes_per_s'] / 1e9:.1f} GB/s"
                for d, c in doc.get("ceilings", {}).items() if c.get("gemm_flops_per_s")]
    if ceilings:
        lines += ["Ceilings (float32, the best any target on the device measured): " + "; ".join(ceilings)
                  + ". Per target: " + "; ".join(peaks) + ".", ""]
    return lines


def _first_and_memory(doc: dict, shown: list[str], by: dict) -> list[str]:
    """First-call time and the memory of one call, per case and target."""
    lines = ["## First call (includes JIT compilation and allocator warm-up), and host memory of one call", ""]
    rows = []
    for c in doc["cases"]:
        row = [c["name"]]
        for t in shown:
            r = by.get((c["name"], t)) or {}
            if r.get("status") != "ok":
                row.append("—")
                continue
            mem = r.get("memory") or {}
            nbytes = mem.get("device_peak_bytes") or mem.get("host_step_bytes")
            row.append(f"{fmt_time(r.get('first_call_s'))}; {fmt_num(nbytes)}B" if nbytes is not None
                       else fmt_time(r.get("first_call_s")))
        rows.append(row)
    return lines + _table(["case", *shown], rows)


def _peak_rss(doc: dict, shown: list[str], by: dict) -> list[str]:
    """The worker's peak RSS per case and target, with its growth over the RSS at the case's start."""
    def cell(r: dict) -> str:
        peak, start = r.get("peak_rss_bytes"), r.get("rss_start_bytes")
        if r.get("status") != "ok" or peak is None:
            return "—"
        text = f"{fmt_num(peak)}B"
        if start is not None:
            text += f" (+{fmt_num(max(0, peak - start))}B)"
        return text + ("" if r.get("peak_rss_source", "VmHWM") == "VmHWM" else " (lifetime)")

    rows = [[c["name"], *[cell(by.get((c["name"], t)) or {}) for t in shown]] for c in doc["cases"]]
    if all(x == "—" for row in rows for x in row[1:]):
        return []
    note = ("The worker process's resident high-water mark (VmHWM, reset when the case starts) from building "
            "the case to its last sample: interpreter, framework, model, data and the calls.  Each worker runs "
            "its cases one after another, so memory its allocator kept from earlier cases counts too; "
            "\"(lifetime)\" marks the process's lifetime peak (`ru_maxrss`) where the counter cannot be reset.")
    lines = ["## Peak RSS of the worker during the case (+ growth over its RSS at the case's start)", "", note, ""]
    return lines + _table(["case", *shown], rows)


def _notes(doc: dict, by: dict) -> list[str]:
    """Targets (with the kernels that ran) and every skip or error, grouped by reason."""
    lines = ["## Targets", ""]
    for t in doc["targets"]:
        info = t.get("info") or {}
        bits = [f"{k}={info[k]}" for k in ("kernels_active", "numba_threads", "batch_workers", "torch_threads", "device_name")
                if info.get(k) is not None]
        tf32 = (info.get("precision_settings") or {}).get("tf32_mode")
        if tf32 is not None and t.get("device") == "cuda":
            bits.append(f"tf32={tf32}")
        blas = [f"{p['internal_api']}×{p['num_threads']}" + _core(p) for p in info.get("blas", [])]
        if blas:
            bits.append("pools " + ", ".join(blas))
        state = "ok" if t["status"] == "ok" else f"{t['status']}: {t['reason']}"
        extra = f"; {'; '.join(bits)}" if bits else ""
        lines.append(f"- `{t['name']}` ({t.get('description', '')}): {state}{extra}")
    grouped: dict[tuple, list[str]] = {}
    for r in doc["results"]:
        if r["status"] not in ("ok", "unavailable"):
            grouped.setdefault((r["target"], r["status"], r["reason"]), []).append(r["case"])
    if grouped:
        lines += ["", "Skipped or failed cases:", ""]
        for (target, status, reason), names in grouped.items():
            lines.append(f"- `{target}` {status} on {', '.join(names)}: {reason}")
    return lines + [""]


def headline(docs: list[Any]) -> str:
    """Training-step throughput (samples/s) of every target over the given ``train`` documents.

    CPU targets are taken from the CPU run when there is one, GPU targets from
    the GPU runs, so one table shows CPU vs GPU and ember vs PyTorch.
    """
    has_cpu_doc = any(d["device_tag"] == "cpu" for d in docs)
    columns: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    notes = []
    for doc in docs:
        shown, by = _index(doc)
        device = {t["name"]: t["device"] for t in doc["targets"]}
        if doc["device_tag"] != "cpu" and has_cpu_doc:
            shown = [t for t in shown if device[t] == "cuda"]
        m = doc["machine"]
        notes.append(f"`{doc['device_tag']}`: {m['cpu']} ({m['cpu_count']} cpus, load {m.get('load_average_start')}), "
                     f"threads {doc['settings']['threads'] or 'default'}, {doc['created']}")
        for t in shown:
            if t not in columns:
                columns.append(t)
            for c in doc["cases"]:
                r = by.get((c["name"], t))
                if r and r["status"] == "ok":
                    rows.setdefault(c["name"], {})[t] = fmt_num(r["items_per_s"])
    lines = _table(["training step (samples/s)", *columns],
                   [[name, *[cells.get(t, "—") for t in columns]] for name, cells in rows.items()])
    return "\n".join(lines + ["Runs: " + "; ".join(notes) + "."])
