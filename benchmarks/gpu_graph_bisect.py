"""Where a replayed CUDA graph parts from the eager step: forward, backward, optimizer, or the batch copy.

Run on a GPU machine (``PYTHONPATH=. python benchmarks/gpu_graph_bisect.py [part ...]``); each part
prints one line per check with the largest difference from the eager computation on the same
state and batch. GEMMs go through ember's own cuBLAS handle in both (``device_gemm.ALWAYS``), so
a correct graph differs by 0. Parts: ``fwd`` (low-level graph of a forward pass), ``bwd`` (forward,
loss and backward), ``opt`` (an optimizer step alone), ``step`` (``ember.compile`` of a whole
step, batches uploaded before the run or between replays), ``amp`` (the compiled AMP step, with
and without the loss scaler). Run ``amp`` in a process of its own: an illegal address poisons the
CUDA context.
"""

from __future__ import annotations

import sys
import traceback

import numpy

import ember as em
from ember.backends import device_gemm

F = em.nn.functional
SHAPE = (1, 28, 28)


def _batches(n: int, seed: int = 1) -> list:
    rng = numpy.random.default_rng(seed)
    return [(rng.normal(size=(100, *SHAPE)).astype(numpy.float32), rng.integers(0, 10, 100)) for _ in range(n)]


def _model(name: str) -> object:
    em.manual_seed(0)
    make = {"tln": lambda: em.models.TwoLayerNet(SHAPE, 50, 10), "scn": lambda: em.models.SimpleConvNet(SHAPE),
            "dcn": lambda: em.models.DeepConvNet(SHAPE)}[name]
    return make().to("cuda")


def _optimizer(kind: str, params: list) -> object:
    if kind == "sgd":
        return em.optim.SGD(params, lr=0.05)
    if kind == "sgdm":
        return em.optim.SGD(params, lr=0.05, momentum=0.9)
    return em.optim.Adam(params, lr=1e-3)


def _diff(a: object, b: object) -> float:
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    return float(numpy.abs(a - b).max()) if a.size else 0.0


def _report(part: str, label: str, diffs: list) -> None:
    worst = max(diffs) if diffs else float("nan")
    verdict = "OK" if worst == 0.0 else "DIFFERS"
    print(f"{part:5s} {label:34s} {verdict:8s} max|diff| per replay: {['%.3g' % d for d in diffs]}", flush=True)


def part_fwd() -> None:
    for name in ("tln", "scn"):
        model = _model(name)
        model.eval()
        data = _batches(3)
        static = em.tensor(data[0][0], device="cuda")
        g = em.cuda.CUDAGraph()
        with em.no_grad():
            model(static)  # warm-up: kernels loaded, GEMMs chosen
            with em.cuda.graph(g):
                out = model(static)
            diffs = []
            for x, _ in data:
                static.data[...] = em.tensor(x, device="cuda").data
                g.replay()
                got = out.numpy().copy()
                diffs.append(_diff(got, model(em.tensor(x, device="cuda")).numpy()))
        _report("fwd", name, diffs)


def part_bwd() -> None:
    for name in ("tln", "scn"):
        model = _model(name)
        params = list(model.parameters())
        data = _batches(3)
        xs, ts = em.tensor(data[0][0], device="cuda"), em.tensor(data[0][1], device="cuda")

        def fwd_bwd(x: object, t: object) -> object:
            for p in params:
                p.grad = None
            loss = F.cross_entropy(model(x), t)
            loss.backward()
            return loss

        fwd_bwd(xs, ts)
        g = em.cuda.CUDAGraph()
        with em.cuda.graph(g):
            loss = fwd_bwd(xs, ts)
        graph_grads = [p.grad for p in params]
        diffs_loss, diffs_grad = [], []
        for x, t in data:
            xs.data[...] = em.tensor(x, device="cuda").data
            ts.data[...] = em.tensor(t, device="cuda").data
            g.replay()
            got_loss, got = float(loss.numpy()), [gg.numpy().copy() for gg in graph_grads]
            want_loss = float(fwd_bwd(em.tensor(x, device="cuda"), em.tensor(t, device="cuda")).numpy())
            diffs_loss.append(abs(got_loss - want_loss))
            diffs_grad.append(max(_diff(a, p.grad.numpy()) for a, p in zip(got, params)))
        _report("bwd", f"{name} loss", diffs_loss)
        _report("bwd", f"{name} grads", diffs_grad)


def part_opt() -> None:
    for kind in ("sgd", "sgdm", "adam"):
        pair = []
        for _ in range(2):
            model = _model("tln")
            params = list(model.parameters())
            rng = numpy.random.default_rng(5)
            grads = [em.tensor(rng.normal(size=p.shape).astype(numpy.float32), device="cuda") for p in params]
            for p, gr in zip(params, grads):
                p.grad = gr
            pair.append((params, _optimizer(kind, params)))
        (gp, gopt), (ep, eopt) = pair
        gopt.step()
        eopt.step()  # both take one eager step (state made), then the graph's are replays
        g = em.cuda.CUDAGraph()
        with em.cuda.graph(g):
            gopt.step()
        diffs = []
        for _ in range(3):
            g.replay()
            eopt.step()
            diffs.append(max(_diff(a.numpy(), b.numpy()) for a, b in zip(gp, ep)))
        _report("opt", kind, diffs)


def _compiled_losses(name: str, kind: str, compiled: bool, upload_first: bool, amp: bool = False,
                     scaler_on: bool = True, n: int = 5, warmup: int = 1, init_scale: float = 2.0**10) -> tuple:
    model = _model(name)
    model.train()
    opt = _optimizer(kind, list(model.parameters()))
    scaler = em.amp.GradScaler(init_scale=init_scale) if scaler_on and amp else None

    def step(x: object, t: object) -> object:
        opt.zero_grad()
        if amp:
            with em.amp.autocast(dtype=em.float16):
                loss = F.cross_entropy(model(x), t)
        else:
            loss = F.cross_entropy(model(x), t)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    run = em.compile(step, warmup=warmup) if compiled else step
    data = _batches(n)
    uploaded = [(em.tensor(x, device="cuda"), em.tensor(t, device="cuda")) for x, t in data] if upload_first else None
    losses = []
    for i, (x, t) in enumerate(data):
        xt, tt = uploaded[i] if uploaded else (em.tensor(x, device="cuda"), em.tensor(t, device="cuda"))
        losses.append(float(run(xt, tt).numpy()))
    return losses, [p.numpy().copy() for p in model.parameters()]


def part_step() -> None:
    for name in ("tln", "scn"):
        for kind in ("sgd", "sgdm", "adam"):
            eager, eager_params = _compiled_losses(name, kind, False, True)
            for upload_first in (True, False):
                got, params = _compiled_losses(name, kind, True, upload_first)
                label = f"{name} {kind} {'batches first' if upload_first else 'upload per step'}"
                _report("step", label, [abs(a - b) for a, b in zip(got, eager)]
                        + [max(_diff(a, b) for a, b in zip(params, eager_params))])


def part_amp() -> None:
    # (model, optimizer, scaler, eager warm-up calls, initial scale); the last is the harness's
    # ember-cuda-amp-graph DeepConvNet case, whose capture CuPy refused on 2026-12-04 (a host->device copy)
    variants = [("tln", "sgdm", False, 1, 2.0**10), ("tln", "sgdm", True, 1, 2.0**10),
                ("dcn", "adam", True, 1, 2.0**10), ("dcn", "adam", True, 3, 2.0**16),
                ("dcn", "adam", True, 1, 2.0**16), ("dcn", "sgdm", True, 3, 2.0**16),
                ("dcn", "adam", False, 3, 2.0**16), ("scn", "adam", True, 3, 2.0**16)]
    for name, kind, scaler_on, warmup, scale in variants:
        label = f"{name} {kind} amp {'+ scaler' if scaler_on else 'no scaler'} warm-up {warmup}"
        try:
            args = dict(amp=True, scaler_on=scaler_on, warmup=warmup, init_scale=scale)
            eager, _ = _compiled_losses(name, kind, False, True, **args)
            got, _ = _compiled_losses(name, kind, True, True, **args)
            _report("amp", label, [abs(a - b) for a, b in zip(got, eager)])
        except Exception as exc:  # noqa: BLE001 - the point is to see which variant fails and how
            print(f"amp   {label:34s} RAISED   {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc()  # with the chained cause: the op that made the refused copy
            if "IllegalAddress" in type(exc).__name__ + str(exc):
                return  # the CUDA context is poisoned: later variants would fail for that reason alone


PARTS = {"fwd": part_fwd, "bwd": part_bwd, "opt": part_opt, "step": part_step, "amp": part_amp}


def main(argv: list[str]) -> int:
    device_gemm.ALWAYS = True
    for name in argv or ["fwd", "bwd", "opt", "step"]:
        try:
            PARTS[name]()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next part
            print(f"{name:5s} RAISED {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
