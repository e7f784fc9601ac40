#!/usr/bin/env bash
# Device run 2 of 2026-12-04: bisect the graph replay, the AMP graph, and re-run the gpu tests the first run lost.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 EMBER_DATA=runs/data
R=/tmp/r2; mkdir -p $R; : > $R/stages.txt
st() { local n=$1 l=$2; shift 2; local t0=$(date +%s); timeout $l "$@" > $R/$n.txt 2>&1; local rc=$?
  echo "$n exit=$rc s=$(( $(date +%s)-t0 ))" | tee -a $R/stages.txt; grep -E "^(fwd|bwd|opt|step|amp) |passed|failed|^FAILED|^ERROR" $R/$n.txt | head -40; }
PT="python -m pytest -m gpu -q -p no:cacheprovider -rfE --tb=short"
st bisect 120 python benchmarks/gpu_graph_bisect.py fwd bwd opt step
st amp 50 python benchmarks/gpu_graph_bisect.py amp
st rest 120 $PT tests --deselect tests/gpu/test_cuda_ops.py --deselect tests/gpu/test_cuda_graphs.py
st sort 50 $PT tests/gpu/test_cuda_ops.py -k "sort or topk"
st accuracy 80 $PT --durations=5 tests/gpu/test_cuda_ops.py -k "network_trains"
tar czf $OUT/r2.tgz -C $R .
