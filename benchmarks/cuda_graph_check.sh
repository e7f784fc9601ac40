#!/usr/bin/env bash
# One-shot GPU check of CUDA-graph capture (about 5 minutes on an H100/H200): the gpu-marked
# graph tests, then the training harness for eager vs graphed ember and torch (float32, TF32 off).
#
# From the repository root on the device machine:
#   bash benchmarks/cuda_graph_check.sh
# Results: $OUT/pytest_graphs.txt and the harness report under $OUT (or benchmarks/results/).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

python - <<'PY' 2>&1 | tee "$OUT_DIR/graph_env.txt"
import ember as em
print("cuda available:", em.cuda.is_available())
from ember.backends.cupy import cublas
lib = cublas.load_library()
print("libcublas:", lib._name)
PY

# capture + replay correctness: low level, compile vs eager (TwoLayerNet, SimpleConvNet, DeepConvNet), AMP, cuBLAS
timeout 180 python -m pytest -m gpu -q -p no:cacheprovider -rfEs --durations=10 tests/gpu/test_cuda_graphs.py 2>&1 \
  | tee "$OUT_DIR/pytest_graphs.txt" | tail -40
echo "pytest (graphs) exit: ${PIPESTATUS[0]}"

# the same wiring on the fake device (fast; catches an environment difference)
timeout 60 python -m pytest -q -p no:cacheprovider tests/backends/test_cuda_graphs_fake_cpu.py \
  tests/backends/test_cuda_cublas_fake_cpu.py 2>&1 | tail -3

# speed: eager and graphed, ember and torch, float32 with TF32 off on both sides
timeout 240 python -m benchmarks train --no-plots --out "$OUT_DIR" --baseline torch-cuda \
  --targets ember-cuda,ember-cuda-graph,ember-cuda-amp,ember-cuda-amp-graph,torch-cuda,torch-cuda-graph 2>&1 | tail -40
echo "harness exit: ${PIPESTATUS[0]}"
