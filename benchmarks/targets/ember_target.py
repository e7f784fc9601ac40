"""Ember as a benchmark target: the NumPy or Numba CPU kernels, or CuPy on the GPU (fp32/AMP, graphs).

The CPU kernel family is chosen per process by ``EMBER_CPU_KERNELS`` (set by
the target spec before ember is imported).  ``probe`` records which kernel
modules the cpu backend actually exposes, so a run made before the Numba
backend exists says that the reference kernels ran.  Optional features (AMP,
CUDA graphs) are looked up at run time and skipped with the reason when absent.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

import ember as em
from ember.nn import functional as F

from benchmarks import dispatch
from benchmarks.targets import common
from benchmarks.targets.base import Bench, Skip, Target

DTYPES = {"float64": em.float64, "float32": em.float32, "float16": em.float16, "amp": em.float32}


def precision_settings(device: str) -> dict:
    """The float32 math settings a GPU run uses: CuPy's TF32 switch (read from the environment at import)."""
    if device != "cuda":
        return {"tf32_mode": "n/a (cpu)"}
    cupy_tf32 = os.environ.get("CUPY_TF32")
    return {"tf32_mode": "on" if cupy_tf32 not in (None, "", "0") else "off", "CUPY_TF32": cupy_tf32,
            "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}


def _kernel_modules(backend: Any) -> dict:
    """Module name of every kernel kind of a backend (what the ops will call)."""
    return {kind: getattr(backend, kind).__name__ for kind in backend.kernel_kinds()}


class EmberTarget(Target):
    """ember on ``device`` in ``precision``; ``graph`` replays a captured step (a CUDA graph, or the CPU tape)."""

    framework = "ember"

    # ------------------------------------------------------------------ setup
    def probe(self) -> dict:
        """Availability, backend and the kernel modules that will run."""
        if self.device == "cuda" and not em.cuda.is_available():
            raise Skip("em.cuda.is_available() is False (CuPy missing or no GPU)")
        if self.precision == "amp" and not hasattr(getattr(em, "amp", None), "autocast"):
            raise Skip("ember.amp.autocast does not exist yet")
        if self.graph:
            self._graphs()
        from ember.backends import get_backend

        backend = get_backend(self.device)
        kernels = _kernel_modules(backend)
        info = {"ember": em.__version__, "backend": getattr(backend, "name", "?"), "kernel_modules": kernels,
                "EMBER_CPU_KERNELS": os.environ.get("EMBER_CPU_KERNELS"),
                "precision_settings": precision_settings(self.device)}
        wanted = self.options.get("kernels")
        if self.device == "cpu":
            names = " ".join(kernels.values()) + " " + info["backend"]
            info["kernels_active"] = "numba" if "numba" in names else "numpy (reference)"
            try:  # the backend's own answer, where ember has one
                from ember.backends.selection import cpu_kernels

                info["kernels_active"] = cpu_kernels()
            except ImportError:
                pass
            if wanted and wanted not in info["kernels_active"]:
                info["kernels_note"] = f"asked for {wanted} kernels, but the cpu backend runs {info['kernels_active']}"
        if wanted == "numba":
            import numba

            info["numba"] = numba.__version__
            info["numba_threads"] = numba.get_num_threads()
            info["numba_threading_layer_env"] = os.environ.get("NUMBA_THREADING_LAYER")
            info["batch_workers"] = backend.conv.batch_workers()
        if self.device == "cuda":
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            info["device_name"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            info["cupy"] = cupy.__version__
        return info

    def _graphs(self) -> Any:
        """``ember.graphs`` (the CPU tape) or ``ember.cuda.graphs``, or Skip."""
        name = "ember.graphs" if self.device == "cpu" else "ember.cuda.graphs"
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise Skip(f"{name} is not available ({exc})") from None

    def _capture(self, step: Any) -> Any:
        """Capture ``step`` once and return the replay; accepts two API shapes, else skips."""
        graphs = self._graphs()
        if hasattr(graphs, "capture"):  # capture(fn) -> object with replay()
            return graphs.capture(step).replay
        graph_cls = getattr(graphs, "CUDAGraph", None) or getattr(graphs, "Graph", None)
        if graph_cls is not None and hasattr(graphs, "graph"):  # PyTorch-style
            from ember.autograd.capture import CaptureError

            g = graph_cls()
            try:
                with graphs.graph(g):
                    step()
            except CaptureError as exc:
                raise Skip(f"the step cannot be captured yet: {exc}") from None
            return g.replay
        raise Skip(f"{graphs.__name__} has neither capture(fn) nor a graph class with graph()")

    def _compiled(self, body: Any, x: Any, t: Any) -> Any:
        """``em.compile(body)`` warmed up and captured on ``(x, t)``; a step that cannot be captured skips."""
        from ember.autograd.capture import CaptureError

        compiled = em.compile(body, warmup=3, on_new_shape="raise")
        try:
            for _ in range(4):  # three eager warm-up calls, then the capture (and its first launch)
                compiled(x, t)
        except CaptureError as exc:
            raise Skip(f"the step cannot be captured as a CUDA graph yet: {exc}") from None
        return lambda: compiled(x, t)

    def _tensor(self, a: np.ndarray, dtype: Any = None, requires_grad: bool = False) -> Any:
        """A NumPy array as an ember tensor on this target's device."""
        return em.tensor(a, dtype=dtype, device=self.device, requires_grad=requires_grad)

    def sync(self) -> None:
        """Wait for the GPU (nothing on the CPU)."""
        if self.device == "cuda":
            em.cuda.synchronize()

    def timer(self) -> Any:
        """CUDA events on the GPU, the wall clock on the CPU."""
        if self.device != "cuda":
            return super().timer()
        import cupy

        from benchmarks.harness.timing import EventTimer

        return EventTimer(cupy.cuda.Event, cupy.cuda.get_elapsed_time, self.sync)

    def reset_device_peak(self) -> None:
        """Return cached CuPy blocks so the pool's size tracks the next call."""
        if self.device == "cuda":
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()

    def device_peak_bytes(self) -> int | None:
        """Bytes held by CuPy's pool after the call (its high-water mark)."""
        if self.device != "cuda":
            return None
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())  # blocks held: the pool's high-water mark

    def peak_rates(self, quick: bool) -> dict:
        """GEMM rate and copy bandwidth of NumPy (CPU) or CuPy (GPU)."""
        if self.device != "cuda":
            return common.cpu_peak_rates(np.matmul, np.copyto, lambda s: np.ones(s, np.float32), quick)
        import cupy

        n, m = (4096, 1 << 26) if quick else (8192, 1 << 28)
        a = cupy.ones((n, n), cupy.float32)
        src, dst = cupy.ones(m, cupy.float32), cupy.empty(m, cupy.float32)
        timer = self.timer()
        gemm = min(timer.time(lambda: cupy.matmul(a, a), 3) for _ in range(3))
        cp = min(timer.time(lambda: cupy.copyto(dst, src), 3) for _ in range(3))
        return {"gemm_flops_per_s": 2.0 * n**3 / gemm, "gemm_shape": [n, n, n], "gemm_dtype": "float32",
                "copy_bytes_per_s": 8.0 * m / cp, "copy_bytes": 4 * m}

    # ------------------------------------------------------------------ cases
    def build_chain(self, p: dict) -> Bench:
        """The dispatch-overhead chain of ``benchmarks.dispatch`` on a one-element tensor."""
        n_ops, mode = p["n_ops"], p["mode"]
        x0 = np.array([0.5], np.float32)

        def step() -> Any:
            x = self._tensor(x0, requires_grad=True)
            if mode == "fwd no_grad":
                with em.no_grad():
                    return dispatch.chain(x, n_ops)
            y = dispatch.chain(x, n_ops)
            if mode == "fwd+bwd":
                y.backward()
            return y

        return Bench(step, items=n_ops)

    def _model(self, p: dict) -> Any:
        """The ember model for a case."""
        name = p["model"]
        common.check_model(name)
        dim = tuple(p.get("input_dim", (1, 28, 28)))
        classes = p.get("classes", 10)
        if name == "two_layer_net":
            model = em.models.TwoLayerNet(dim, p.get("hidden", 50), classes, activation="relu")
        elif name == "mlp":
            model = em.models.MultiLayerNet(dim, [512, 512], classes)
        elif name == "simple_convnet":
            model = em.models.SimpleConvNet(dim, output_size=classes)
        else:
            model = em.models.DeepConvNet(dim, output_size=classes)
        return model

    def build_train(self, p: dict) -> Bench:
        """One optimizer step: zero_grad, forward, cross-entropy, backward, step."""
        precision = self.case_precision(p)
        em.manual_seed(p.get("seed", 0))
        model = self._model(p).to(self.device).to(DTYPES[precision])
        x_np, t_np = common.batch(p, p.get("seed", 0))
        x, t = self._tensor(x_np, DTYPES[precision]), self._tensor(t_np)
        opt_cls = em.optim.Adam if p.get("optimizer", "adam") == "adam" else em.optim.SGD
        opt = opt_cls(model.parameters(), lr=p.get("lr", 1e-3 if opt_cls is em.optim.Adam else 0.01))
        model.train()
        if precision == "amp":
            if not hasattr(getattr(em, "amp", None), "autocast"):
                raise Skip("ember.amp.autocast does not exist yet")
            scaler = em.amp.GradScaler()

            def body(xb: Any, tb: Any) -> Any:
                opt.zero_grad()
                with em.amp.autocast(dtype=em.float16):
                    loss = F.cross_entropy(model(xb), tb)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                return loss
        else:
            def body(xb: Any, tb: Any) -> Any:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), tb)
                loss.backward()
                opt.step()
                return loss

        def step() -> Any:
            return body(x, t)

        if self.graph and self.device == "cuda":  # one CUDA graph; each call copies the batch in (em.compile)
            step = self._compiled(body, x, t)
        elif self.graph:
            for _ in range(3):  # warm up kernels and the memory pool before capture
                step()
            step = self._capture(step)
        return Bench(step, items=p["batch"], meta={"precision": precision})

    def build_infer(self, p: dict) -> Bench:
        """Forward passes in eval mode without a graph (``no_grad``) over every batch of the case.

        A plain case is one batch; an eval case (``total`` images) loops over
        its batches, which are made into tensors on the device beforehand.
        """
        precision = self.case_precision(p)
        em.manual_seed(p.get("seed", 0))
        model = self._model(p).to(self.device).to(DTYPES[precision])
        model.eval()
        xs = [self._tensor(xb, DTYPES[precision]) for xb in common.eval_batches(p, p.get("seed", 0))]
        amp = precision == "amp"
        if amp and not hasattr(getattr(em, "amp", None), "autocast"):
            raise Skip("ember.amp.autocast does not exist yet")

        def forward_all() -> Any:
            for x in xs:
                y = model(x)
            return y

        def step() -> Any:
            with em.no_grad():
                if amp:
                    with em.amp.autocast(dtype=em.float16):
                        return forward_all()
                return forward_all()

        if self.graph:
            step()
            step = self._capture(step)
        return Bench(step, items=p.get("total", p["batch"]), meta={"precision": precision, "batches": len(xs)})

    def build_op(self, p: dict) -> Bench:
        """One op (matmul, conv2d, max_pool2d, softmax_ce), forward or forward+backward."""
        precision = self.case_precision(p)
        if precision == "amp":
            raise Skip("op cases run in a plain dtype")
        dt = DTYPES[precision]
        bwd = p["mode"] == "fwd+bwd"
        step = common.op_step(p, self._tensor, F, em.no_grad, dt, bwd)
        return Bench(step, items=1, meta={"precision": precision})

    def build_kernel(self, p: dict) -> Bench:
        """A raw array kernel of the backend (im2col / col2im), no autograd."""
        from ember.autograd.ops.conv import kernels
        from ember.backends import get_backend

        backend = get_backend(self.device)
        k, xp = kernels(backend), backend.xp
        x = backend.asarray(common.normal(tuple(p["x"]), 1))
        kh, s, pad = p["k"], p["stride"], p["pad"]
        if p["kernel"] == "im2col":
            return Bench(lambda: k.im2col(x, kh, kh, s, pad, xp=xp), meta={"module": k.__name__})
        col = k.im2col(x, kh, kh, s, pad, xp=xp)
        return Bench(lambda: k.col2im(col, x.shape, kh, kh, s, pad, xp=xp), meta={"module": k.__name__})
