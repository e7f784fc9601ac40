"""PyTorch as a peer target: twins of the harness's models and ops, eager mode, CPU or CUDA.

torch is imported only here, inside the worker.  The twins have the same layer
shapes as ember's models (default initialisation: timing does not depend on
it).  On CUDA, samples are timed with ``torch.cuda.Event``s and memory with
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import dispatch
from benchmarks.targets import common
from benchmarks.targets.base import Bench, Skip, Target

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "amp": torch.float32}
TF32_MODES = ("off", "default")


def apply_tf32(mode: str) -> dict:
    """Set TF32 for cuDNN convolutions and cuBLAS matmuls and return the settings now in force.

    ``"off"``: both IEEE float32 (``allow_tf32 = False``); ``"default"``: torch's defaults, untouched.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in TF32_MODES:
        raise ValueError(f"TorchTarget: expected tf32 to be one of {TF32_MODES}, got {mode!r}")
    if mode == "off":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return precision_settings(mode)


def precision_settings(mode: str) -> dict:
    """The float32 math settings torch will use (legacy flags, the newer fp32_precision ones where present)."""
    settings = {"tf32_mode": mode, "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}
    for name, holder in (("cudnn.conv.fp32_precision", getattr(torch.backends.cudnn, "conv", None)),
                         ("cuda.matmul.fp32_precision", torch.backends.cuda.matmul)):
        value = getattr(holder, "fp32_precision", None)
        if value is not None:
            settings[name] = str(value)
    return settings


def twin(name: str, input_dim: tuple, classes: int, hidden: int | None = None) -> nn.Module:
    """The torch version of one of the harness's models."""
    common.check_model(name)
    c, h, w = input_dim
    if name == "two_layer_net":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden or 50), nn.ReLU(),
                             nn.Linear(hidden or 50, classes))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, classes))
    if name == "simple_convnet":
        oh, ow = h - 4, w - 4
        return nn.Sequential(nn.Conv2d(c, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(30 * (oh // 2) * (ow // 2), hidden or 100), nn.ReLU(),
                             nn.Linear(hidden or 100, classes))
    layers: list = []
    for i, (filters, pad) in enumerate([(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]):
        layers += [nn.Conv2d(c, filters, 3, padding=pad), nn.ReLU()]
        c, h, w = filters, h + 2 * pad - 2, w + 2 * pad - 2
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2, 2))
            h, w = h // 2, w // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, hidden or 50), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(hidden or 50, classes), nn.Dropout(0.5))


class TorchTarget(Target):
    """PyTorch eager on ``device`` in ``precision`` (``amp``: float16 autocast, GradScaler on CUDA)."""

    framework = "torch"
    host_memory = "rss"  # torch's CPU allocator is invisible to tracemalloc

    def probe(self) -> dict:
        """Version, thread counts, device and the TF32 settings (applied here); Skip without CUDA for cuda targets."""
        threads = os.environ.get("BENCH_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        if self.device == "cuda" and not torch.cuda.is_available():
            raise Skip("torch.cuda.is_available() is False")
        info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_interop_threads": torch.get_num_interop_threads()}
        info["precision_settings"] = apply_tf32(self.options.get("tf32", "default"))
        if self.device == "cuda":
            info["device_name"] = torch.cuda.get_device_name()
            info["cuda"] = torch.version.cuda
        return info

    def sync(self) -> None:
        """torch.cuda.synchronize on the GPU."""
        if self.device == "cuda":
            torch.cuda.synchronize()

    def timer(self) -> Any:
        """torch.cuda.Event timing on the GPU, the wall clock on the CPU."""
        if self.device != "cuda":
            return super().timer()
        from benchmarks.harness.timing import EventTimer

        return EventTimer(lambda: torch.cuda.Event(enable_timing=True), lambda a, b: a.elapsed_time(b), self.sync)

    def reset_device_peak(self) -> None:
        """Reset torch's CUDA peak-memory counter."""
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def device_peak_bytes(self) -> int | None:
        """torch's CUDA peak allocation since the reset."""
        return int(torch.cuda.max_memory_allocated()) if self.device == "cuda" else None

    def peak_rates(self, quick: bool) -> dict:
        """torch GEMM rate and copy bandwidth."""
        if self.device != "cuda":
            return common.cpu_peak_rates(torch.mm, lambda d, s: d.copy_(s),
                                         lambda s: torch.ones(s, dtype=torch.float32), quick)
        n, m = (4096, 1 << 26) if quick else (8192, 1 << 28)
        a = torch.ones((n, n), device="cuda")
        src, dst = torch.ones(m, device="cuda"), torch.empty(m, device="cuda")
        timer = self.timer()
        gemm = min(timer.time(lambda: torch.mm(a, a), 3) for _ in range(3))
        cp = min(timer.time(lambda: dst.copy_(src), 3) for _ in range(3))
        return {"gemm_flops_per_s": 2.0 * n**3 / gemm, "gemm_shape": [n, n, n], "gemm_dtype": "float32",
                "copy_bytes_per_s": 8.0 * m / cp, "copy_bytes": 4 * m}

    def _tensor(self, a: Any, dtype: Any = None, requires_grad: bool = False) -> torch.Tensor:
        """A NumPy array as a torch tensor on this target's device."""
        return torch.tensor(a, dtype=dtype, device=self.device, requires_grad=requires_grad)

    def _autocast(self) -> Any:
        """float16 autocast on this target's device."""
        return torch.autocast(device_type=self.device, dtype=torch.float16)

    def build_chain(self, p: dict) -> Bench:
        """The overhead chain on a torch tensor."""
        n_ops, mode = p["n_ops"], p["mode"]

        def step() -> Any:
            x = torch.tensor([0.5], device=self.device, requires_grad=True)
            if mode == "fwd no_grad":
                with torch.no_grad():
                    return dispatch.chain(x, n_ops)
            y = dispatch.chain(x, n_ops)
            if mode == "fwd+bwd":
                y.backward()
            return y

        return Bench(step, items=n_ops)

    def _model(self, p: dict, precision: str) -> nn.Module:
        """The seeded torch twin of a case's model."""
        torch.manual_seed(p.get("seed", 0))
        model = twin(p["model"], tuple(p.get("input_dim", (1, 28, 28))), p.get("classes", 10), p.get("hidden"))
        return model.to(device=self.device, dtype=DTYPES[precision])

    def build_train(self, p: dict) -> Bench:
        """zero_grad, forward, cross-entropy, backward, step (GradScaler with AMP on CUDA)."""
        precision = self.case_precision(p)
        model = self._model(p, precision).train()
        x_np, t_np = common.batch(p, p.get("seed", 0))
        x, t = self._tensor(x_np, DTYPES[precision]), self._tensor(t_np)
        adam = p.get("optimizer", "adam") == "adam"
        opt = (torch.optim.Adam(model.parameters(), lr=p.get("lr", 1e-3)) if adam
               else torch.optim.SGD(model.parameters(), lr=p.get("lr", 0.01)))
        if self.graph:
            return self._graphed_train(p, model, x, t, adam, precision)
        scaler = torch.amp.GradScaler(self.device, enabled=precision == "amp" and self.device == "cuda")

        def step() -> Any:
            opt.zero_grad(set_to_none=True)
            if precision == "amp":
                with self._autocast():
                    loss = F.cross_entropy(model(x), t)
            else:
                loss = F.cross_entropy(model(x), t)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return loss

        return Bench(step, items=p["batch"], meta={"precision": precision})

    def _graphed_train(self, p: dict, model: nn.Module, x: torch.Tensor, t: torch.Tensor, adam: bool,
                       precision: str) -> Bench:
        """The whole step (forward, loss, backward, optimizer) as one CUDA graph, as PyTorch's docs capture it.

        Warm-up on a side stream, gradients set to None before capture (so they come
        from the graph's pool), a capturable Adam (its step count on the device), and
        each timed call copies the batch into the static inputs and replays.
        """
        if self.device != "cuda":
            raise Skip("torch.cuda.graphs needs a CUDA device")
        if precision == "amp":
            raise Skip("torch's GradScaler.step reads found_inf on the host, which a CUDA graph cannot hold")
        opt = (torch.optim.Adam(model.parameters(), lr=p.get("lr", 1e-3), capturable=True) if adam
               else torch.optim.SGD(model.parameters(), lr=p.get("lr", 0.01)))
        static_x, static_t = x.clone(), t.clone()

        def body() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(static_x), static_t)
            loss.backward()
            opt.step()
            return loss

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                body()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = body()

        def step() -> torch.Tensor:
            static_x.copy_(x)
            static_t.copy_(t)
            graph.replay()
            return static_loss

        return Bench(step, items=p["batch"], meta={"precision": precision, "graph": "torch.cuda.graphs"})

    def build_infer(self, p: dict) -> Bench:
        """Eval-mode forward under no_grad over every batch of the case (one, or ``total`` images' worth)."""
        precision = self.case_precision(p)
        model = self._model(p, precision).eval()
        xs = [self._tensor(xb, DTYPES[precision]) for xb in common.eval_batches(p, p.get("seed", 0))]

        def forward_all() -> Any:
            for x in xs:
                y = model(x)
            return y

        def step() -> Any:
            with torch.no_grad():
                if precision == "amp":
                    with self._autocast():
                        return forward_all()
                return forward_all()

        return Bench(step, items=p.get("total", p["batch"]), meta={"precision": precision, "batches": len(xs)})

    def build_op(self, p: dict) -> Bench:
        """One op forward (and backward) on the case's shapes."""
        precision = self.case_precision(p)
        if precision == "amp":
            raise Skip("op cases run in a plain dtype")
        dt = DTYPES[precision]
        bwd = p["mode"] == "fwd+bwd"
        step = common.op_step(p, self._tensor, F, torch.no_grad, dt, bwd)
        return Bench(step, meta={"precision": precision})

    def build_kernel(self, p: dict) -> Bench:
        """``F.unfold`` / ``F.fold``: PyTorch's im2col / col2im."""
        x = self._tensor(common.normal(tuple(p["x"]), 1))
        k, s, pad = p["k"], p["stride"], p["pad"]
        if p["kernel"] == "im2col":
            return Bench(lambda: F.unfold(x, k, padding=pad, stride=s))
        col = F.unfold(x, k, padding=pad, stride=s)
        return Bench(lambda: F.fold(col, tuple(p["x"][2:]), k, padding=pad, stride=s))
