#!/usr/bin/env bash
# One-shot GPU check for a lent machine (about 8-10 minutes): environment, the `gpu`-marked
# tests, training-step timings of ember (CuPy) vs PyTorch on the same GPU, then the harness.
# The distributed gpu tests need mpi4py + mpich wheels carried to the device (they skip without).
#
# From the repository root on the device machine:
#   bash benchmarks/gpu_check.sh
# Fashion-MNIST for the accuracy test: copy it into an ignored folder here first and carry it,
#   mkdir -p runs/data && cp -r /work/shared/data/fashion-mnist runs/data/   # then run with carry=["runs/data"]
# (without it the accuracy test falls back to scikit-learn's digits, or skips with a reason).
# Results: $OUT/gpu_check.json (timings), $OUT/pytest_gpu.txt and $OUT/env.txt (or benchmarks/results/).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export EMBER_DATA="${EMBER_DATA:-runs/data}"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  python - <<'EOF'
import platform, numpy
print("python", platform.python_version(), "numpy", numpy.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "runtime", cupy.cuda.runtime.runtimeGetVersion(), "devices", cupy.cuda.runtime.getDeviceCount())
except Exception as e:
    print("cupy unavailable:", type(e).__name__, e)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except Exception as e:
    print("torch unavailable:", type(e).__name__, e)
EOF
} 2>&1 | tee "$OUT_DIR/env.txt"

# The backend's own GPU tests first (CuPy compiles each kernel once per dtype on first use;
# about 300 tests), then every other `gpu`-marked test of the suite.
timeout 270 python -m pytest -m gpu -q -p no:cacheprovider -rfEs --durations=10 tests/gpu/test_cuda_ops.py 2>&1 \
  | tee "$OUT_DIR/pytest_gpu.txt" | tail -60
echo "pytest (cuda ops) exit: ${PIPESTATUS[0]}"
timeout 90 python -m pytest -m gpu -q -p no:cacheprovider -rfEs tests --deselect tests/gpu/test_cuda_ops.py 2>&1 \
  | tee "$OUT_DIR/pytest_gpu_rest.txt" | tail -30
echo "pytest (rest) exit: ${PIPESTATUS[0]}"

timeout 150 python benchmarks/gpu_check.py --steps 20 --repeats 5 2>&1 | tail -20
echo "benchmark exit: ${PIPESTATUS[0]}"

# The harness with the named baselines (float32 with TF32 off on both sides, then each one's TF32),
# written with the device name under $OUT_DIR.
timeout 240 python -m benchmarks train infer --no-plots --out "$OUT_DIR" \
  --targets ember-cuda,ember-cuda-tf32,ember-cuda-amp,torch-cuda,torch-cuda-tf32,torch-cuda-amp 2>&1 | tail -30
echo "harness exit: ${PIPESTATUS[0]}"
