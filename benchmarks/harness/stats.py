"""Summary statistics of timing samples: median, min-max, quartiles/IQR and ratios.

Medians and quartiles use linear interpolation between order statistics (NumPy's
default ``percentile`` method), written out here so the parent process needs
nothing but the standard library.
"""

from __future__ import annotations

import math
from typing import Sequence


def _check(samples: Sequence[float], what: str) -> list[float]:
    """The samples as sorted floats; ValueError if empty or NaN."""
    values = [float(s) for s in samples]
    if not values:
        raise ValueError(f"{what}: expected at least one sample, got none")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{what}: samples contain NaN: {values}")
    return sorted(values)


def quantile(samples: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 <= q <= 1), linearly interpolated between sorted samples."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile: expected q in [0, 1], got {q}")
    values = _check(samples, "quantile")
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    """The middle sample (mean of the two middle ones for an even count)."""
    return quantile(samples, 0.5)


def iqr(samples: Sequence[float]) -> float:
    """Interquartile range ``q3 - q1``: the spread of the middle half, robust to outliers."""
    return quantile(samples, 0.75) - quantile(samples, 0.25)


def summarize(samples: Sequence[float]) -> dict:
    """``{n, median, min, max, q1, q3, iqr, mean}`` of the samples."""
    values = _check(samples, "summarize")
    q1, q3 = quantile(values, 0.25), quantile(values, 0.75)
    return {"n": len(values), "median": quantile(values, 0.5), "min": values[0], "max": values[-1],
            "q1": q1, "q3": q3, "iqr": q3 - q1, "mean": sum(values) / len(values)}


def ratio(baseline: float | None, value: float | None) -> float | None:
    """Speed-up of ``value`` over ``baseline`` for times (``baseline / value``; > 1 means faster).

    None when either side is missing or the value is not positive.
    """
    if baseline is None or value is None or value <= 0 or baseline <= 0:
        return None
    return baseline / value


def paired_ratio(baseline: Sequence[float], target: Sequence[float]) -> float | None:
    """Median over rounds of ``baseline[r] / target[r]``: the speed-up from samples taken side by side.

    The runner takes one sample per target per round, so sample ``r`` of each
    target comes from the same few seconds; a shared VM's slow phase then scales
    both sides of a pair and cancels in its ratio, where it shifts the two
    medians of ``ratio`` by however many of each target's samples it covered.
    Rounds a target skipped come last (fewer repeats), so the first
    ``min(len)`` samples pair up.  None when either side has no positive sample.
    """
    pairs = [b / t for b, t in zip(baseline, target) if b > 0 and t > 0]
    return median(pairs) if pairs else None


def relative_spread(summary: dict) -> float:
    """``iqr / median``: a quick noise indicator printed next to medians."""
    return summary["iqr"] / summary["median"] if summary["median"] > 0 else math.inf
