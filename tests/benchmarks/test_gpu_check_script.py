"""``benchmarks/gpu_check.sh`` fits its 8-minute budget and passes the harness only targets it knows."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import gpu_check

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def test_stage_limits_fit_the_budget_and_the_script_parses():
    text = SCRIPT.read_text()
    limits = [int(m) for m in re.findall(r"^\s*stage \w+ (\d+) ", text, flags=re.M)]
    budget = int(re.search(r"^STAGE_BUDGET_S=(\d+)$", text, flags=re.M).group(1))
    assert len(limits) == 6 and sum(limits) == budget and budget <= 470  # the rest of 480 s: the env stage
    for stage in ("pytest_cuda_ops", "pytest_gpu_rest", "probe", "profile", "harness", "infer"):
        assert re.search(rf"^\s*stage {stage} ", text, flags=re.M), stage
    for name in ("ember-cuda-graph", "ember-cuda-amp-graph", "torch-cuda-graph", "ember-cuda-amp", "torch-cuda-tf32"):
        assert name in text
    assert "train train_large" in text
    if shutil.which("bash") is None:
        pytest.skip("no bash to parse the script with")
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_known_targets_splits_by_the_registry(capsys):
    known, unknown = gpu_check.known_targets(["ember-cuda", "no-such-target", "torch-cuda"])
    assert known == ["ember-cuda", "torch-cuda"] and unknown == ["no-such-target"]
    assert gpu_check.main(["--known-targets", "torch-cuda,no-such-target"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "torch-cuda" and "no-such-target" in out.err
