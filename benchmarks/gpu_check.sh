#!/usr/bin/env bash
# One-shot GPU check for a lent machine: about 5 minutes on an H200, under 8 in all (each stage has its own
# timeout; the timeouts add up to STAGE_BUDGET_S): environment, the `gpu`-marked tests, the optional GPU
# probe, the per-op/per-kernel profile, then the harness (training at batch 100 and at batch 1000,
# float32 / TF32 / AMP / CUDA-graph targets of ember and PyTorch).
#
# From the repository root on the device machine:
#   bash benchmarks/gpu_check.sh
# Optional carried inputs (ignored folders; run with carry=["runs/data", "runs/tools"]):
#   mkdir -p runs/data && cp -r /work/shared/data/fashion-mnist runs/data/   # the accuracy test's data
#   mkdir -p runs/tools && cp /work/shared/tools/gpu_probe.py runs/tools/    # the probe (not part of the repo:
#                                                                            # it carries no license)
# Without them the accuracy test falls back to scikit-learn's digits (or skips with a reason) and
# the probe stage is skipped.  The distributed gpu tests need mpi4py + mpich wheels (they skip without).
# Results, all under $OUT (or benchmarks/results/ when OUT is unset): env.txt, pytest_gpu*.txt,
# probe.json, gpu_profile-<device>.json/.md, train-<device>.*, train_large-<device>.*, stages.txt.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export EMBER_DATA="${EMBER_DATA:-$PWD/runs/data}"  # absolute: the docs tests run their blocks elsewhere
STAGE_BUDGET_S=465
START=$(date +%s)
: > "$OUT_DIR/stages.txt"

stage() {  # stage NAME TIMEOUT_S CMD...: run with a timeout, log exit code and seconds to stages.txt
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@"
  rc=$?
  echo "$name exit=$rc seconds=$(( $(date +%s) - t0 )) limit=$limit" | tee -a "$OUT_DIR/stages.txt"
}

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
try:
    from ember.backends.cupy import cublas
    print("libcublas for capture:", cublas.load_library()._name)
except Exception as e:
    print("libcublas unavailable:", type(e).__name__, e)
EOF
} 2>&1 | tee "$OUT_DIR/env.txt"

# The backend's own GPU tests first (CuPy compiles each kernel once per dtype on first use),
# then every other `gpu`-marked test of the suite (conv GEMM, fused conv+ReLU, float16, optimizers, ...).
stage pytest_cuda_ops 100 bash -c 'python -m pytest -m gpu -q -p no:cacheprovider -rfEs --durations=10 \
  tests/gpu/test_cuda_ops.py > "$0/pytest_gpu.txt" 2>&1; rc=$?; tail -30 "$0/pytest_gpu.txt"; exit $rc' "$OUT_DIR"
stage pytest_gpu_rest 100 bash -c 'python -m pytest -m gpu -q -p no:cacheprovider -rfEs --durations=10 tests \
  --deselect tests/gpu/test_cuda_ops.py > "$0/pytest_gpu_rest.txt" 2>&1; rc=$?; tail -30 "$0/pytest_gpu_rest.txt"; exit $rc' "$OUT_DIR"

if [ -f runs/tools/gpu_probe.py ]; then
  stage probe 25 python runs/tools/gpu_probe.py "$OUT_DIR/probe.json"
else
  echo "probe skipped: runs/tools/gpu_probe.py was not carried" | tee -a "$OUT_DIR/stages.txt"
fi

# Per op (CUDA events) and per kernel (CUPTI through torch.profiler) for one step of each configuration.
stage profile 40 python benchmarks/gpu_profile.py --out "$OUT_DIR" --batches 100,1000 --precisions float32,amp \
  --steps 3 --warmup 2

# The harness: named baselines (TF32 off on both sides, then each one's TF32), AMP, and CUDA-graph replay.
# Targets another branch has not added yet are listed and skipped.
WANTED=ember-cuda,ember-cuda-tf32,ember-cuda-amp,ember-cuda-graph,ember-cuda-amp-graph,torch-cuda,torch-cuda-tf32,torch-cuda-amp,torch-cuda-graph
TARGETS=$(python benchmarks/gpu_check.py --known-targets "$WANTED")
stage harness 170 python -m benchmarks train train_large --no-plots --no-progress --out "$OUT_DIR" \
  --repeats 5 --warmup 1 --settle 0.02 --max-case 3 --baseline torch-cuda,ember-cuda --targets "$TARGETS"

# Inference: the eval pass over 10k images at batch 1000 (DeepConvNet's acceptance case), eager float32
# on both sides; the report shows each case's fraction of the measured GEMM rate (roofline).
stage infer 30 python -m benchmarks infer --cases "convnet eval 10k" --no-plots --no-progress --out "$OUT_DIR" \
  --repeats 3 --warmup 1 --settle 0.02 --baseline torch-cuda --targets ember-cuda,torch-cuda,torch-cuda-tf32

echo "gpu_check: $(( $(date +%s) - START )) s in all (stage limits add up to ${STAGE_BUDGET_S} s)" \
  | tee -a "$OUT_DIR/stages.txt"
