"""Plant realistic bugs one at a time in a copy of the package and check that the tests catch each.

Each mutation is (name, exact old text, new text, tests to run).  The file is found by
searching the package for the old text (optionally narrowed by a file-name suffix), so the
list survives modules being moved; a text that is missing or ambiguous stops the run before
anything is planted.  Every test command first runs on the unmutated copy (it must pass),
then once per mutation that uses it; a mutation is caught when its tests fail.

Usage (from the repository root)::

    python tests/mutation_check.py                 # all mutations, markdown table on stdout
    python tests/mutation_check.py --only gradcheck-first-input --timeout 120
    python tests/mutation_check.py --out /tmp/mutations.md

Exit status 0 when every mutation is caught, 1 when one is missed, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CUDA = ("tests/backends/cuda_on_cpu",)
REGISTRY = "tests/autograd/test_gradcheck_registry.py"


@dataclass(frozen=True)
class Mutation:
    """A planted bug: replace ``old`` (found exactly once in the package) by ``new``."""

    name: str
    old: str
    new: str
    tests: tuple[str, ...]
    file_suffix: str = ""  # narrows the search when the text also occurs elsewhere
    area: str = ""
    skip_dirs: tuple[str, ...] = ()  # package sub-folders not searched


MUTATIONS = [
    # --- the four the suite used to miss
    Mutation("cuda-im2col-stride-swap", "long long iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;",
             "long long iy = oy * SW - PH + ky, ix = ox * SH - PW + kx;", CUDA, "conv.py", "CUDA kernel"),
    Mutation("cuda-relu-backward-ge", '"yv > (ACC)0 ? g : (ACC)0"', '"yv >= (ACC)0 ? g : (ACC)0"', CUDA,
             area="CUDA kernel"),
    Mutation("gradcheck-first-input-only", "enumerate(zip(row_a, row_n))", "enumerate(zip(row_a[:1], row_n[:1]))",
             ("tests/autograd/test_gradcheck_tool.py",), area="gradcheck"),
    Mutation("gradcheck-first-output-only", "enumerate(zip(analytic, numeric))",
             "enumerate(zip(analytic[:1], numeric[:1]))", ("tests/autograd/test_gradcheck_tool.py",),
             area="gradcheck"),
    Mutation("generation-from-first-nonleaf-input", "if fn.generation >= generation:", "if generation == 0:",
             ("tests/autograd/test_engine.py", "tests/autograd/test_engine_ordering.py"), area="engine"),
    # --- engine
    Mutation("engine-overwrites-node-gradient", "total = _add(before, gx)",
             "total = gx", ("tests/autograd/test_engine.py",), area="engine"),
    Mutation("engine-overwrites-multi-output-gradient", "total = _add(slots[i], gx)",
             "total = gx", ("tests/autograd/test_engine.py", "tests/autograd/test_light_node.py"), area="engine"),
    Mutation("engine-overwrites-leaf-grad", "leaf.grad = g if leaf.grad is None else _accumulate_leaf(leaf.grad, g)",
             "leaf.grad = g", ("tests/autograd/test_engine.py",), area="engine"),
    # --- ops
    Mutation("div-backward-sign", "gb = -ga * a / b if ctx.needs_input_grad[1] else None",
             "gb = ga * a / b if ctx.needs_input_grad[1] else None", (REGISTRY, "-k", "div"), area="op"),
    Mutation("tanh-double-backward-missing-square", "return gy * (1 - y * y)", "return gy * (1 - y)",
             (REGISTRY, "-k", "tanh"), "elementwise.py", "op"),
    Mutation("reference-tanh-backward-missing-square", "return gy * (1 - y * y)", "return gy * (1 - y)",
             (REGISTRY, "tests/backends/test_numba_nn_optim.py", "-k", "tanh"), area="CPU kernel",
             skip_dirs=("autograd",)),
    Mutation("reference-relu-backward-ge", "return xp.where(y > 0, gy, 0)", "return xp.where(y >= 0, gy, 0)",
             ("tests/nn/test_activation_loss.py", "tests/backends/test_numba_nn_optim.py"), area="CPU kernel"),
    # --- kernels
    Mutation("cuda-im2col-rows-remainder-by-the-wrong-size", "I ox = r % OW, oy = (r / OW) % OH",
             "I ox = r % OH, oy = (r / OW) % OH", CUDA, "conv_gemm.py", "CUDA kernel"),
    Mutation("cuda-im2col-rows-late-carry", "carry = oy >= OH;", "carry = oy > OH;", CUDA, "conv_gemm.py",
             "CUDA kernel"),
    Mutation("cupy-capture-join-uses-cupys-table", "if CAPTURING[0] and len(arrays) > CUPY_JOIN_TABLE_OVER:\n"
             "            return join_by_copies", "if False:\n            return join_by_copies",
             ("tests/backends/test_cuda_graphs_join_fake_cpu.py",), "backend.py", "capture"),
    Mutation("cuda-col2im-stride-swap", "ox_top = tx / SW32;", "ox_top = tx / SH32;",
             CUDA, "kernel_spec.py", "CUDA kernel"),
    Mutation("cuda-gather-late-row-carry", "carry = y >= H32;", "carry = y > H32;", CUDA, "kernel_spec.py",
             "CUDA kernel"),
    Mutation("cuda-max-pool-last-max-wins", "if (v > best || (is_nan(v) && !is_nan(best)))",
             "if (v >= best || (is_nan(v) && !is_nan(best)))", CUDA, area="CUDA kernel"),
    Mutation("cuda-batch-norm-tree-stops-early", "for (int k = BLOCK_SIZE / 2; k > 0; k >>= 1)",
             "for (int k = BLOCK_SIZE / 2; k > 1; k >>= 1)", CUDA, area="CUDA kernel", file_suffix="bn.py"),
    Mutation("cuda-adam-amsgrad-min", "v = (old > v || is_nan(old)) ? old : v;", "v = (old > v || is_nan(old)) ? v : old;",
             CUDA, area="CUDA kernel"),
    Mutation("numba-im2col-stride-swap", "cp[i, j, oy, ox] = xp[iy, ox * sw + j]", "cp[i, j, oy, ox] = xp[iy, ox * sh + j]",
             ("tests/backends/test_numba_conv_pool.py",), area="Numba kernel"),
    Mutation("numba-per-tap-gx-transposed-taps", "gemm(Wt[a * kw + bb], g, gxpf", "gemm(Wt[bb * kw + a], g, gxpf",
             ("tests/backends/test_numba_conv_shifted.py",), area="Numba kernel"),
    Mutation("numba-per-tap-forward-overwrites", "0.0 if a + bb == 0 else 1.0", "0.0",
             ("tests/backends/test_numba_conv_shifted.py",), area="Numba kernel"),
    Mutation("numba-conv-bias-grad-first-slice-only", "        for _, partial in partials:",
             "        for _, partial in partials[:1]:", ("tests/backends/test_numba_conv_fused.py",),
             area="Numba kernel"),
    Mutation("blas-gemm-ignores-row-stride", "ldb = max(1, b.strides[0] // size, b.shape[1])", "ldb = max(1, b.shape[1])",
             ("tests/backends/test_numba_blas_gemm.py",), area="Numba kernel"),
    Mutation("parallel-gemm-block-skips-its-first-row",
             "in numba.prange(parts):\n        _block(a, b, c, trans_a, trans_b, by_rows, total * p // parts,",
             "in numba.prange(parts):\n        _block(a, b, c, trans_a, trans_b, by_rows, total * p // parts + 1,",
             ("tests/backends/test_numba_parallel_gemm.py",), area="Numba kernel"),
    Mutation("prange-slices-mask-from-the-first-images", "ys = y[lo:hi] if masked else y",
             "ys = y[:hi - lo] if masked else y", ("tests/backends/test_numba_conv_fused.py",
                                                   "tests/backends/test_numba_conv_shifted.py"), area="Numba kernel"),
    Mutation("pool-flat-part-ends-one-short", "lo, hi = part_edge(n, p, count), part_edge(n, p + 1, count)\n"
             "        _sgd(", "lo, hi = part_edge(n, p, count), part_edge(n, p + 1, count) - 1\n        _sgd(",
             ("tests/backends/test_numba_optim.py", "-k", "sgd"), area="Numba kernel"),
    Mutation("numba-sgd-many-casts-once-for-all-dtypes", "key = (w.dtype, buf is not None)", "key = buf is not None",
             ("tests/backends/test_numba_optim.py", "-k", "sgd"), area="Numba kernel"),
    Mutation("parallel-gemm-always-cuts-the-longer-axis", "by_rows = m >= n or m >= MIN_ROWS_PER_BLOCK * workers",
             "by_rows = m >= n", ("tests/backends/test_numba_parallel_gemm.py",), area="Numba kernel"),
    Mutation("parallel-gemm-small-blocks-rounded-down", "parts = workers * -(-macs // (workers * SMALL_BLOCK_MACS))",
             "parts = workers * max(1, macs // (workers * SMALL_BLOCK_MACS))",
             ("tests/backends/test_numba_parallel_gemm.py",), area="Numba kernel"),
    Mutation("sgd-coefficients-kept-across-learning-rates", "if entry is not None and entry[0] == args:",
             "if entry is not None and entry[0][0] == args[0]:", ("tests/backends/test_numba_optim.py", "-k", "sgd"),
             area="Numba kernel"),
    Mutation("core-load-counts-every-second-pause", "pause = not starved if starved is not None else not _state",
             "pause = not _state", ("tests/backends/test_cpu_core_load.py",), area="threads"),
    Mutation("core-load-never-starved", "return after[1] - before[1] >= STARVED_WAIT_FRACTION * wall",
             "return False", ("tests/backends/test_cpu_core_load.py",), area="threads"),
    Mutation("adam-pool-cut-ignores-the-element-cost", "arrays(w, g, m, v, vmax) + coefficients, ADAM_ELEMENT_COST)",
             "arrays(w, g, m, v, vmax) + coefficients)", ("tests/backends/test_numba_optim.py", "-k", "adam"),
             area="Numba kernel"),
    Mutation("adam-step-size-without-bias-correction", "s(lr / (1 - beta1**step))", "s(lr / (1 - beta1))",
             ("tests/backends/test_numba_optim.py", "-k", "adam"), area="Numba kernel"),
    Mutation("parallel-gemm-packed-blocks-cut-columns", "by_rows = m >= n or m >= MIN_ROWS_PER_PACKED_BLOCK * workers",
             "by_rows = m >= n", ("tests/backends/test_numba_parallel_gemm.py",), area="Numba kernel"),
    Mutation("blas-small-kernels-on-every-core", "return found and core in SMALL_KERNEL_CORES", "return found",
             ("tests/backends/test_numba_blas_gemm.py",), area="Numba kernel"),
    Mutation("conv-backward-per-tap-without-small-kernels", "SHIFTED_GEMMS and (SHIFTED_BACKWARD or not backward) and",
             "SHIFTED_GEMMS and", ("tests/backends/test_numba_conv_shifted.py",), area="Numba kernel"),
    Mutation("conv-slices-always-cut-for-small-kernels", "block_macs = conv_im2col_slices.BLOCK_MACS\n    bias",
             "block_macs = conv_im2col_slices.SMALL_GEMM_MACS\n    bias", ("tests/backends/test_numba_conv_fused.py",),
             area="Numba kernel"),
    Mutation("conv-row-blocks-drop-the-last-row", "lo, hi = m * p // parts, m * (p + 1) // parts\n        if trans_a:",
             "lo, hi = m * p // parts, m * (p + 1) // parts - (p == parts - 1)\n        if trans_a:",
             ("tests/backends/test_numba_conv_fused.py",), area="Numba kernel"),
    Mutation("linear-epilogue-on-the-first-columns", "finish(c, bias, relu, zero, 0, c.shape[0], lo, hi)",
             "finish(c, bias, relu, zero, 0, c.shape[0], 0, hi - lo)", ("tests/backends/test_numba_linear.py",),
             area="Numba kernel"),
    Mutation("linear-grad-mask-passes-zero-outputs", "z[j] = g[j] if yi[j] > zero else zero",
             "z[j] = g[j] if yi[j] >= zero else zero", ("tests/backends/test_numba_linear.py",), area="Numba kernel"),
    Mutation("linear-bias-grad-skips-the-second-row", "for i in range(1, src.shape[0]):",
             "for i in range(2, src.shape[0]):", ("tests/backends/test_numba_linear.py",), area="Numba kernel"),
    Mutation("linear-grad-parts-skip-a-column", "zero, n * p // count, n * (p + 1) // count)",
             "zero, n * p // count + 1, n * (p + 1) // count)", ("tests/backends/test_numba_linear.py",),
             area="Numba kernel"),
    Mutation("class-index-range-keeps-the-first-minimum", "lo = min(lo, v)", "lo = lo",
             ("tests/backends/test_numba_class_index_range.py",), area="Numba kernel"),
    Mutation("linear-relu-backward-forgets-the-mask", "return affine_backward(ctx, gy, ctx.saved_arrays[2])",
             "return affine_backward(ctx, gy, None)", ("tests/autograd/test_ops_linear_relu.py",), area="autograd op"),
    Mutation("linear-relu-fused-despite-hooks", "and not _hooked(linear) and not _hooked(act))", ")",
             ("tests/autograd/test_ops_linear_relu.py",), area="nn"),
    Mutation("parallel-gemm-first-call-skips-the-thread-policy", "    apply_thread_policy()  # one BLAS thread per",
             "    pass  # one BLAS thread per", ("tests/backends/test_numba_parallel_gemm.py", "-k", "first_call"),
             area="Numba kernel"),
    # --- optimizers
    Mutation("sgd-momentum-buffer-restarts-every-step", "first = momentum != 0 and buf is None",
             "first = momentum != 0", ("tests/optim",), area="optimizer"),
    Mutation("sgd-batch-momentum-buffer-restarts-every-step",
             'first = momentum != 0 and state.get("momentum_buffer") is None', "first = momentum != 0",
             ("tests/optim",), area="optimizer"),
    Mutation("adam-bias-correction-no-sqrt", "denom /= (1 - beta2**step) ** 0.5", "denom /= 1 - beta2**step",
             ("tests/optim",), area="optimizer"),
    Mutation("reference-sgd-kernel-dampening-inverted", "buf += (1 - dampening) * g", "buf += dampening * g",
             ("tests/backends/test_numba_optim.py", CUDA[0], "-k", "sgd"), area="CPU kernel"),
    Mutation("steplr-off-by-one", "return base_lr * self.gamma ** (epoch // self.step_size)",
             "return base_lr * self.gamma ** ((epoch + 1) // self.step_size)", ("tests/optim/test_lr_scheduler.py",),
             area="optimizer"),
    # --- serialization
    Mutation("load-returns-tuples-as-lists", 'return tuple(self.decode(v) for v in node["items"])',
             'return [self.decode(v) for v in node["items"]]',
             ("tests/nn/test_serialization.py", "tests/reliability/test_checkpoints.py"), area="serialization"),
    Mutation("load-casts-tensors-to-float32", "return Tensor._make(self.backend.asarray(host))",
             "return Tensor._make(self.backend.asarray(host).astype(numpy.float32))",
             ("tests/nn/test_serialization.py", "tests/reliability/test_checkpoints.py"), area="serialization"),
    Mutation("graph-host-filled-from-scratch-pool", "with _cupy().cuda.using_allocator(self._host_pool.malloc):",
             "with contextlib.nullcontext():", ("tests/backends/test_cuda_graphs_fake_cpu.py",), area="cuda graphs"),
    Mutation("sort-passes-kind-to-cupy",
             'if type(x) is numpy.ndarray else xp.argsort(x, axis=axis)',
             'if type(x) is numpy.ndarray else xp.argsort(x, axis=axis, kind="stable")',
             ("tests/backends/test_cupy_ops_fake_cpu.py",), area="cuda ops"),
    Mutation("cuda-source-includes-a-host-header", "template <typename I>\n__device__ __forceinline__ void im2col_rows_at",
             "#include <climits>\ntemplate <typename I>\n__device__ __forceinline__ void im2col_rows_at",
             ("tests/backends/test_cuda_sources_compile_nvrtc.py",), area="cuda kernels"),
    Mutation("nccl-id-as-tuple-only", "return nccl.NcclCommunicator(size, uid.tobytes(), rank)",
             "return nccl.NcclCommunicator(size, tuple(int(v) for v in uid), rank)",
             ("tests/distributed/test_nccl_unique_id.py",), area="distributed"),
]


def locate(package: Path, m: Mutation) -> Path:
    """The one file of ``package`` holding ``m.old`` exactly once (or a clear error)."""
    hits = []
    for path in sorted(package.rglob("*.py")):
        if m.file_suffix and not path.name.endswith(m.file_suffix):
            continue
        if any(d in path.relative_to(package).parts[:-1] for d in m.skip_dirs):
            continue
        count = path.read_text().count(m.old)
        if count:
            hits.append((path, count))
    if len(hits) != 1 or hits[0][1] != 1:
        found = ", ".join(f"{p.relative_to(package.parent)} x{c}" for p, c in hits) or "nowhere"
        raise SystemExit(f"mutation_check: {m.name}: the old text must occur exactly once, found {found}: {m.old!r}")
    return hits[0][0]


def _copy(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "results")
    for name in ("ember", "tests", "benchmarks"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


def run_tests(copy: Path, args: tuple[str, ...], timeout: float, numba_cache: str | None = None) -> tuple[str, str, float]:
    """``(outcome, first failing test or note, seconds)``; outcome is passed, failed, error or timeout.

    ``numba_cache``: a Numba cache folder of this run's own.  A mutant needs one: Numba's disk
    cache checks only the calling function's file, so a kernel compiled before a mutation in a
    module it calls would be reused, and a mutant's kernels must not outlive the mutant.
    """
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = numba_cache
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout:.0f} s", time.monotonic() - start
    seconds = time.monotonic() - start
    failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", done.stdout, re.MULTILINE)
    note = failed.group(1) if failed else done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    outcome = {0: "passed", 1: "failed"}.get(done.returncode, "error")
    return outcome, note, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Plant known bugs one at a time and report which the tests catch.")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (default 300)")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = p.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTATIONS})
        if unknown:
            p.error(f"unknown mutation(s) {unknown}; see --list")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.area:15s} {' '.join(m.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="ember-mutants-") as tmp:
        copy = Path(tmp)
        _copy(copy)
        targets = {m.name: locate(copy / "ember", m) for m in chosen}  # every text is checked before any run
        baseline: dict[tuple, str] = {}
        rows = []
        for m in chosen:
            if m.tests not in baseline:
                outcome, note, _ = run_tests(copy, m.tests, args.timeout)
                baseline[m.tests] = outcome
                if outcome != "passed":
                    print(f"mutation_check: the unmutated tests {' '.join(m.tests)} did not pass ({outcome}: {note})",
                          file=sys.stderr)
                    return 2
            path = targets[m.name]
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            try:
                with tempfile.TemporaryDirectory(prefix="ember-mutant-numba-") as numba_cache:
                    outcome, note, seconds = run_tests(copy, m.tests, args.timeout, numba_cache)
            finally:
                path.write_text(original)
            verdict = {"failed": "caught", "passed": "MISSED"}.get(outcome, f"caught ({outcome})")
            rows.append((m, path.relative_to(copy), verdict, note, seconds))
            print(f"{m.name}: {verdict} ({seconds:.0f} s) {note}", file=sys.stderr)
    lines = ["| mutation | area | file | tests | result | first failure | s |", "|---|---|---|---|---|---|---:|"]
    for m, rel, verdict, note, seconds in rows:
        lines.append(f"| {m.name} | {m.area} | {rel} | {' '.join(m.tests)} | {verdict} | {note} | {seconds:.0f} |")
    missed = sum(1 for r in rows if r[2] == "MISSED")
    lines.append(f"\n{len(rows) - missed}/{len(rows)} caught.")
    table = "\n".join(lines)
    print(table)
    if args.out:
        tmp_out = args.out.with_name(args.out.name + ".tmp")
        tmp_out.write_text(table + "\n")
        os.replace(tmp_out, args.out)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
