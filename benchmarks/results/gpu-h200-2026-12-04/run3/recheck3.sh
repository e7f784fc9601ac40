#!/usr/bin/env bash
# Device run 3 of 2026-12-04: the fixes (host-filled graph memory, sort test, fp16 mask test, NCCL id) and graph timings.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 EMBER_DATA=$PWD/runs/data
R=/tmp/r3; mkdir -p $R; : > $R/stages.txt
st() { local n=$1 l=$2; shift 2; local t0=$(date +%s); timeout $l "$@" > $R/$n.txt 2>&1; local rc=$?
  echo "$n exit=$rc s=$(( $(date +%s)-t0 ))" | tee -a $R/stages.txt; grep -E "^(fwd|bwd|opt|step|amp) |passed|failed|^FAILED|^ERROR" $R/$n.txt | head -30; }
PT="python -m pytest -m gpu -q -p no:cacheprovider -rfE --tb=short"
st bisect 50 python benchmarks/gpu_graph_bisect.py step amp
st tests 100 $PT tests/gpu/test_cuda_graphs.py tests/gpu/test_cuda_conv_relu_fp16.py tests/gpu/test_cuda_ops.py -k "not test_cuda_ops or sort or topk"
st more 50 $PT tests/distributed/test_ddp_mpi.py tests/test_docs_examples.py
st harness 80 python -m benchmarks train --no-plots --no-progress --out $R --repeats 5 --warmup 1 --settle 0.02 --max-case 3 --baseline torch-cuda,ember-cuda --targets ember-cuda,ember-cuda-graph,ember-cuda-amp-graph,torch-cuda,torch-cuda-graph
tar czf $OUT/r3.tgz -C $R .
