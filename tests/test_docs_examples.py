"""Every ```python block in README.md and docs/*.md runs as written, each in a fresh process.

A block whose first line is ``# gpu`` runs only with ``-m gpu``; one that reads MNIST or
Fashion-MNIST skips unless $EMBER_DATA is set. Blocks run in a temporary folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
DATA_MARKERS = ("MNIST(", "FashionMNIST(", "EMBER_DATA", 'dataset="mnist"', 'dataset="fashion-mnist"')


def blocks() -> list:
    params = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text[: match.start()].count("\n") + 1
            code = match.group(1)
            marks = [pytest.mark.gpu] if code.lstrip().startswith("# gpu") else []
            params.append(pytest.param(code, id=f"{page.relative_to(ROOT)}:{line}", marks=marks))
    return params


def test_the_pages_have_python_blocks():
    assert len(blocks()) >= 2


@pytest.mark.parametrize("code", blocks())
def test_block_runs_as_written(code, tmp_path):
    if any(m in code for m in DATA_MARKERS) and not os.environ.get("EMBER_DATA"):
        pytest.skip("this block reads MNIST/Fashion-MNIST: set EMBER_DATA to run it")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, f"block failed:\n{code}\n--- stderr ---\n{proc.stderr[-3000:]}"
