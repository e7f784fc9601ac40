"""The results-file schema and a small validator for it (a subset of JSON Schema, no dependency).

The schema is written in JSON Schema vocabulary (``type``, ``properties``,
``required``, ``items``, ``enum``, ``minimum``, ``additionalProperties``) so a
full validator such as ``jsonschema`` accepts it too; ``validate`` implements
just that subset.  The runner validates every document before writing it.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
_STATUS = {"enum": ["ok", "skipped", "error", "unavailable"]}

STATS = {
    "type": "object",
    "required": ["n", "median", "min", "max", "q1", "q3", "iqr", "mean"],
    "properties": {k: _NUM for k in ("median", "min", "max", "q1", "q3", "iqr", "mean")} | {
        "n": {"type": "integer", "minimum": 1}},
}

CASE = {
    "type": "object",
    "required": ["name", "kind", "params", "items", "item"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["chain", "op", "kernel", "train", "infer"]},
        "params": {"type": "object"},
        "items": {"type": "integer", "minimum": 1},
        "item": {"type": "string"},
        "group": {"type": "string"},
        "x": {"type": ["number", "null"]},
        "work": {"type": "object", "properties": {"flops": _NUM, "bytes": _NUM}},
    },
}

RESULT = {
    "type": "object",
    "required": ["case", "target", "status", "reason", "samples_s", "stats"],
    "properties": {
        "case": {"type": "string"},
        "target": {"type": "string"},
        "status": _STATUS,
        "reason": _STR_OR_NULL,
        "samples_s": {"type": "array", "items": {"type": "number", "minimum": 0}},
        "stats": {"type": ["object", "null"]},
        "inner": {"type": "integer", "minimum": 1},
        "timer": {"type": "string"},
        "first_call_s": _NUM_OR_NULL,
        "per_item_s": _NUM_OR_NULL,
        "items_per_s": _NUM_OR_NULL,
        "memory": {"type": ["object", "null"]},
        "roofline": {"type": ["object", "null"]},
        # the worker's resident high-water mark from the case's setup to its teardown: VmHWM reset at the
        # case's start, or ru_maxrss (the process's lifetime peak) where it cannot be reset
        "peak_rss_bytes": {"type": ["integer", "null"], "minimum": 0},
        "rss_start_bytes": {"type": ["integer", "null"], "minimum": 0},
        "peak_rss_source": {"enum": ["VmHWM", "ru_maxrss"]},
    },
}

TARGET = {
    "type": "object",
    "required": ["name", "device", "status", "reason", "info"],
    "properties": {
        "name": {"type": "string"},
        "device": {"enum": ["cpu", "cuda"]},
        "status": _STATUS,
        "reason": _STR_OR_NULL,
        "info": {"type": "object"},
    },
}

DOCUMENT = {
    "type": "object",
    "required": ["schema_version", "suite", "title", "created", "elapsed_s", "quick", "command", "machine",
                 "versions", "settings", "baselines", "device_tag", "targets", "peaks", "cases", "results"],
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "suite": {"type": "string"},
        "title": {"type": "string"},
        "note": _STR_OR_NULL,
        "created": {"type": "string"},
        "elapsed_s": {"type": "number", "minimum": 0},
        "quick": {"type": "boolean"},
        "command": {"type": "array", "items": {"type": "string"}},
        "machine": {"type": "object", "required": ["cpu", "cpu_count", "load_average"]},
        "versions": {"type": "object", "required": ["python", "numpy"]},
        "settings": {"type": "object", "required": ["repeats", "warmup", "threads", "seed", "interleaved"]},
        "baselines": {"type": "array", "items": {"type": "string"}},
        "device_tag": {"type": "string"},
        "targets": {"type": "array", "items": TARGET},
        "peaks": {"type": "object"},
        "ceilings": {"type": "object"},
        "cases": {"type": "array", "items": CASE},
        "results": {"type": "array", "items": RESULT},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    """Whether ``value`` has JSON type ``name`` (bools are not numbers)."""
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``value``, as ``"<json path>: <problem>"`` strings."""
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: expected one of {schema['enum']}, got {value!r}"]
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        out.append(f"{path}: expected >= {schema['minimum']}, got {value}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: missing required key {key!r}")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                out += errors(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(item, schema["items"], f"{path}[{i}]")
    return out


class SchemaError(ValueError):
    """A results document does not match the schema; the message lists the first problems."""


def consistency_errors(doc: dict) -> list[str]:
    """Rules a schema cannot say: ok results have samples and stats; names refer to listed cases/targets."""
    out: list[str] = []
    names = [c.get("name") for c in doc.get("cases", []) if isinstance(c, dict)]
    cases = set(names)
    if len(cases) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        out.append(f"$.cases: case names must be unique, got duplicates {dups}")
    targets = {t.get("name") for t in doc.get("targets", []) if isinstance(t, dict)}
    for i, r in enumerate(doc.get("results", [])):
        if not isinstance(r, dict):
            continue
        path = f"$.results[{i}]"
        if r.get("case") not in cases:
            out.append(f"{path}: case {r.get('case')!r} is not in $.cases")
        if r.get("target") not in targets:
            out.append(f"{path}: target {r.get('target')!r} is not in $.targets")
        if r.get("status") == "ok":
            if not r.get("samples_s"):
                out.append(f"{path}: status ok without samples")
            out += errors(r.get("stats"), STATS, f"{path}.stats")
        elif not r.get("reason"):
            out.append(f"{path}: status {r.get('status')!r} needs a reason")
    return out


def validate(doc: Any, schema: dict = DOCUMENT) -> None:
    """Raise ``SchemaError`` listing (up to 10) violations, or return None when ``doc`` is valid."""
    problems = errors(doc, schema)
    if not problems and schema is DOCUMENT:
        problems = consistency_errors(doc)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SchemaError("benchmark results do not match the schema: " + "; ".join(problems[:10]) + more)
