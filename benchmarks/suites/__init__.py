"""The benchmark suites, by name.  A suite is a module with ``TITLE``, ``DISPLAY`` and ``cases(quick)``.

An optional ``NOTE`` (markdown) is copied into the results and printed under the report's header.

A case is a plain dict (JSON-serialisable, sent to every worker as is):
``name``, ``kind`` (which ``build_<kind>`` of a target runs it), ``params``,
``items`` and ``item`` (what one call processes, for throughput), and
optionally ``work`` (``flops`` and ``bytes`` per call, for the roofline),
``group`` and ``x`` (series and abscissa for plots).
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("overhead", "ops", "train", "infer", "scaling", "precision", "train_large")


def load(name: str) -> ModuleType:
    """The suite module called ``name``.

    Raises:
        ValueError: an unknown suite (the message lists the valid ones).
    """
    if name not in NAMES:
        raise ValueError(f"unknown suite {name!r}; choose from: {', '.join(NAMES)}")
    return importlib.import_module(f"benchmarks.suites.{name}")
