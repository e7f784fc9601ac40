#!/usr/bin/env bash
# Device run 2 of 2026-12-04 evening: capturable joins (AMP graph of DeepConvNet) and the carry im2col; bisect, then gpu_check.sh.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 EMBER_DATA=$PWD/runs/data
R=/tmp/r6; mkdir -p $R
t0=$(date +%s)
timeout 60 python benchmarks/gpu_graph_bisect.py amp > $R/amp_bisect.txt 2>&1
echo "amp_bisect exit=$? s=$(( $(date +%s)-t0 ))" > $R/outer.txt
OUT=$R timeout 470 bash benchmarks/gpu_check.sh > $R/console.txt 2>&1
echo "gpu_check exit=$? s=$(( $(date +%s)-t0 ))" >> $R/outer.txt
tar czf $OUT/r6.tgz -C $R .
cat $R/outer.txt $R/stages.txt
grep -E "^amp |Error|error:" $R/amp_bisect.txt | head -20
tail -4 $R/pytest_gpu.txt; tail -8 $R/pytest_gpu_rest.txt
for f in $R/train-*.md $R/train_large-*.md $R/infer-*.md; do echo "== $f"; grep -E "^\|" $f | head -30; done
grep -E "im2col_rows|col2im_rows|^## |^Step" $R/gpu_profile-*.md | head -60
