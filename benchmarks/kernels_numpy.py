"""Deprecated entry point: the im2col/col2im and pooling timings now live in the ``ops`` suite.

``python -m benchmarks.kernels_numpy`` runs ``python -m benchmarks ops`` on the
ember-numpy target, restricted to the kernel and pooling cases, writing to a
temporary folder; extra arguments are passed through (e.g. ``--targets
ember-numpy,ember-numba``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    """Run the kernel cases of the ``ops`` suite (default target: ember-numpy)."""
    from benchmarks.__main__ import main as bench_main

    import tempfile

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--targets") for a in args):
        args += ["--targets", "ember-numpy"]
    if not any(a.startswith("--out") for a in args):  # a partial run must not replace results/ops-cpu.*
        args += ["--out", tempfile.mkdtemp(prefix="ember-kernels-")]
    bench_main(["ops", "--cases", "im2col,col2im,max_pool2d", *args])


if __name__ == "__main__":
    main()
