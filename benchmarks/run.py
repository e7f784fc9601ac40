"""``python benchmarks/run.py [args]``: the same as ``python -m benchmarks [args]``."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make `benchmarks` importable as a package
    from benchmarks.__main__ import main

    main()
