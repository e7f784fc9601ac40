"""``python -m ember.train``: train one of the book's networks and report test accuracy.

With no flags it trains SimpleConvNet on the first dataset found offline
(MNIST, then Fashion-MNIST, then scikit-learn's bundled digits) and says which
and why. The work lives in :mod:`ember.training` (``options`` parses and checks
the flags, ``run`` drives the epochs, ``checkpoint`` owns the saved run state).
"""

from __future__ import annotations

import sys

from ember.training.options import LR_SCHEDULES, OPTIMIZERS, parse_args
from ember.training.run import main

__all__ = ["main", "parse_args", "OPTIMIZERS", "LR_SCHEDULES"]

if __name__ == "__main__":
    sys.exit(main())
