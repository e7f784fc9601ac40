"""The book's layers in plain NumPy as a target: the "from scratch" reference ember generalises.

No autograd, no graph: forward and hand-written backward per layer, as in the
book.  The overhead chain is ``benchmarks.dispatch``'s NumPy floor (the same
ufunc calls with a hand-written backward).  AMP does not exist here, so AMP
cases are skipped; float16 runs as plain NumPy float16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import dispatch
from benchmarks.book_numpy import SGD, Adam, Convolution, Pooling, SoftmaxWithLoss, build_net, col2im, im2col
from benchmarks.harness.machine import blas_threads
from benchmarks.targets import common
from benchmarks.targets.base import Bench, Skip, Target


class BookTarget(Target):
    """Plain NumPy, the book's layer classes, on the CPU."""

    framework = "book-numpy"

    def probe(self) -> dict:
        """NumPy's version and thread pools (always available)."""
        return {"numpy": np.__version__, "blas": blas_threads()}

    def peak_rates(self, quick: bool) -> dict:
        """NumPy GEMM rate and copy bandwidth."""
        return common.cpu_peak_rates(np.matmul, np.copyto, lambda s: np.ones(s, np.float32), quick)

    def _precision(self, p: dict) -> Any:
        """The case's precision and NumPy dtype; AMP is skipped."""
        precision = self.case_precision(p)
        if precision == "amp":
            raise Skip("the book's NumPy layers have no autocast (AMP)")
        return precision, common.NUMPY_DTYPES[precision]

    def build_chain(self, p: dict) -> Bench:
        """The NumPy floor of the overhead chain."""
        return Bench(dispatch.numpy_cases(p["n_ops"])[p["mode"]], items=p["n_ops"])

    def _net(self, p: dict, dtype: Any) -> Any:
        """The book network for a case."""
        common.check_model(p["model"])
        return build_net(p["model"], tuple(p.get("input_dim", (1, 28, 28))), p.get("classes", 10),
                         p.get("hidden"), dtype=dtype, seed=p.get("seed", 0))

    def build_train(self, p: dict) -> Bench:
        """``gradient`` + optimizer ``update``, as in the book's training loop."""
        precision, dtype = self._precision(p)
        net = self._net(p, dtype)
        x, t = common.batch(p, p.get("seed", 0))
        x = x.astype(dtype)
        opt = Adam(p.get("lr", 1e-3)) if p.get("optimizer", "adam") == "adam" else SGD(p.get("lr", 0.01))

        def step() -> Any:
            grads = net.gradient(x, t)
            opt.update(net.params, grads)
            return grads

        return Bench(step, items=p["batch"], meta={"precision": precision})

    def build_infer(self, p: dict) -> Bench:
        """``predict`` in eval mode (dropout scales instead of masking) over every batch of the case."""
        precision, dtype = self._precision(p)
        net = self._net(p, dtype)
        xs = [xb.astype(dtype) for xb in common.eval_batches(p, p.get("seed", 0))]

        def step() -> Any:
            for x in xs:
                y = net.predict(x, train=False)
            return y

        return Bench(step, items=p.get("total", p["batch"]), meta={"precision": precision, "batches": len(xs)})

    def build_op(self, p: dict) -> Bench:
        """One layer's forward (and backward) on the case's shapes."""
        precision, dtype = self._precision(p)
        bwd = p["mode"] == "fwd+bwd"
        op = p["op"]
        if op == "matmul":
            a, b = common.normal(tuple(p["a"]), 1, precision), common.normal(tuple(p["b"]), 2, precision)
            gy = common.normal((a.shape[0], b.shape[1]), 4, precision)

            def step() -> Any:
                y = a @ b
                if bwd:
                    return y, gy @ b.T, a.T @ gy
                return y

            return Bench(step, meta={"precision": precision})
        if op == "conv2d":
            W = common.normal(tuple(p["w"]), 2, precision)
            layer: Any = Convolution(W, common.normal((W.shape[0],), 3, precision), p["stride"], p["pad"])
        elif op == "max_pool2d":
            layer = Pooling(p["k"], p["k"], p["stride"])
        elif op == "softmax_ce":
            layer = SoftmaxWithLoss()
        else:
            raise Skip(f"unknown op {op!r}")
        x = common.normal(tuple(p["x"]), 1, precision)
        if op == "softmax_ce":
            t = common.labels(p["x"][0], p["x"][1], 2)
            fwd = lambda: layer.forward(x, t)  # noqa: E731
            gy: Any = 1.0
        else:
            fwd = lambda: layer.forward(x)  # noqa: E731
            gy = common.normal(tuple(fwd().shape), 4, precision)

        def step() -> Any:
            y = fwd()
            return layer.backward(gy) if bwd else y

        return Bench(step, meta={"precision": precision})

    def build_kernel(self, p: dict) -> Bench:
        """The book's im2col/col2im (matrix layout ``(N*OH*OW, C*KH*KW)``)."""
        x = common.normal(tuple(p["x"]), 1)
        k, s, pad = p["k"], p["stride"], p["pad"]
        if p["kernel"] == "im2col":
            return Bench(lambda: im2col(x, k, k, s, pad))
        col = im2col(x, k, k, s, pad)
        return Bench(lambda: col2im(col, x.shape, k, k, s, pad))
