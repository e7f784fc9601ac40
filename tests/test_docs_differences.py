"""The ```python blocks of docs/differences-from-pytorch.md run as written, in a fresh process."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "differences-from-pytorch.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_an_example():
    assert BLOCKS


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_python_block_runs(k):
    result = subprocess.run([sys.executable, "-c", BLOCKS[k]], capture_output=True, text=True, timeout=120,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr
