"""CUDA graphs (``ember.cuda.graphs``, ``ember.compile`` on CUDA) on the CPU through the fake ``cupy``.

The fake records what a capture launches and replays it on ``launch()``
(tests/backends/fake_cuda_graph.py), restoring the arrays that existed before
the capture, so a captured step that froze a value, read the host, copied from
the host or rebound a buffer shows here as it would on a GPU.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
import fake_cuda_graph as fcg
from ember.autograd.capture import CaptureError
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture


@pytest.fixture
def graphs(fake_cupy, monkeypatch):
    """The fake cupy with capture recording; ember's capture streams and cuBLAS handles reset."""
    lib = fcg.install(monkeypatch)
    from ember.cuda import graphs as g

    monkeypatch.setattr(g, "_STREAMS", {})
    return lib


def test_low_level_graph_replays_on_new_input_without_running_at_capture(graphs):
    x = em.tensor([1.0, 2.0], device="cuda")
    w = em.tensor([3.0, 4.0], device="cuda", requires_grad=True)
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        y = (x * w).sum()
        y.backward()
    cap = fcg.last_capture()
    assert cap.stream.ptr not in (0, 1) and cap.stream is em.cuda.graphs.capture_stream()
    assert g.pool() is not None and g.pool().used(cap) and all(p is g.pool() for p in cap.pools_used)
    assert fcg.launches() == 0
    x.data[...] = numpy.array([5.0, 6.0], numpy.float32)
    g.replay()
    assert y.item() == 5 * 3 + 6 * 4 and w.grad.tolist() == [5.0, 6.0]
    assert any(a is x.data for a in g._keep)  # an input the graph reads outlives the user's reference
    x.data[...] = numpy.array([1.0, 1.0], numpy.float32)
    g.replay()
    assert y.item() == 7.0 and fcg.launches() == 2


def test_capture_refuses_host_reads_copies_and_cupy_gemm(graphs):
    import cupy

    x = em.tensor(numpy.ones((2, 2), numpy.float32), device="cuda")
    for step, hint in [(lambda: float((x * 2).sum().item()), "host read"),
                       (lambda: x + em.tensor(numpy.ones((2, 2), numpy.float32), device="cuda"), "host->device"),
                       (lambda: cupy.matmul(x.data, x.data), "cuBLAS")]:
        with pytest.raises(CaptureError, match=hint), em.cuda.graph(em.cuda.CUDAGraph()):
            step()
    g = em.cuda.CUDAGraph()  # the refused captures left nothing behind
    with em.cuda.graph(g):
        y = x @ x  # 2-D products take ember's own cuBLAS handle during capture
    g.replay()
    assert y.tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_host_drawn_dropout_mask_is_refused_with_the_reason(graphs):
    x = em.ones((4, 4), device="cuda")
    with pytest.raises(RuntimeError, match="draws its key on the host"), em.cuda.graph(em.cuda.CUDAGraph()):
        em.nn.functional.dropout(x, 0.5, generator=numpy.random.default_rng(0))
    with pytest.raises(RuntimeError, match="no state on cuda:0 yet"), em.cuda.graph(em.cuda.CUDAGraph()):
        em.nn.functional.dropout(x, 0.5, generator=em.PhiloxGenerator(3))


def test_replay_refuses_a_rebound_parameter(graphs):
    w = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        (w * w).sum().backward()
    w.data = w.data.copy()
    with pytest.raises(RuntimeError, match="given a new array"):
        g.replay()


def _model(name):
    if name == "DeepConvNet":  # with dropout: its masks come from a device generator
        return em.models.DeepConvNet((1, 12, 12), hidden_size=6, output_size=5), (1, 12, 12)
    if name == "SimpleConvNet":
        return em.models.SimpleConvNet(input_dim=(1, 8, 8), conv_param={
            "filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, hidden_size=6, output_size=5), (1, 8, 8)
    return em.models.TwoLayerNet(12, 8, 5), (12,)


def _batches(shape, n, seed=3):
    rng = numpy.random.default_rng(seed)
    return [(rng.normal(size=(4, *shape)).astype(numpy.float32), rng.integers(0, 5, 4)) for _ in range(n)]


def _train(name, opt_name, device, compiled, batches, lrs=None):
    """Parameters and losses after one step per batch (``lrs``: the lr set before each step, outside it)."""
    em.manual_seed(0)
    model, _ = _model(name)
    model = model.to(device)
    opt = (em.optim.Adam(model.parameters(), lr=1e-2) if opt_name == "adam"
           else em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))

    def step(x, t):
        opt.zero_grad()
        loss = em.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        return loss

    run = em.compile(step) if compiled else step
    losses = []
    for i, (x, t) in enumerate(batches):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[i]
        losses.append(run(em.tensor(x, device=device), em.tensor(t, device=device)).item())
    state = [opt.state[k] for k in sorted(opt.state)]
    return [p.numpy().copy() for p in model.parameters()], losses, state, run


@pytest.mark.parametrize("name,opt_name", [("TwoLayerNet", "adam"), ("SimpleConvNet", "sgd"),
                                           ("SimpleConvNet", "adam"), ("DeepConvNet", "adam")])
def test_replayed_steps_equal_eager_steps(graphs, name, opt_name):
    batches = _batches(_model(name)[1], 5)
    lrs = [0.05, 0.05, 0.02, 0.01, 0.005]  # a schedule that changes after the capture (call 2)
    eager = _train(name, opt_name, "cuda", False, batches, lrs)
    replayed = _train(name, opt_name, "cuda", True, batches, lrs)
    assert replayed[3].captures == 1 and fcg.launches() == 4  # call 1 eager, call 2 captured + launched, 3 more
    assert replayed[1] == eager[1]
    for a, b in zip(replayed[0], eager[0]):
        numpy.testing.assert_array_equal(a, b)
    if opt_name == "adam":
        assert [s["step"] for s in replayed[2]] == [s["step"] for s in eager[2]] == [5] * len(eager[2])
        for se, sr in zip(eager[2], replayed[2]):
            numpy.testing.assert_array_equal(se["exp_avg"].get(), sr["exp_avg"].get())
    cap = fcg.last_capture()
    assert [c for c in graphs.calls if c[0] == "gemm"]  # the GEMMs went through ember's handle
    graph = replayed[3]._graphs[next(iter(replayed[3]._graphs))].graph
    pool, host_pool = graph.pool(), graph._host_pool
    assert cap.pools_used and all(p is pool or p is host_pool for p in cap.pools_used)  # the graph's two pools
    assert sum(p is host_pool for p in cap.pools_used) == 1  # the device scalars (the fake's pointer table is host)


def test_a_frozen_learning_rate_would_be_caught(graphs, monkeypatch):
    """With the lr passed by value (the eager kernels), a schedule change after capture is lost."""
    from ember.optim import captured

    batches = _batches((12,), 4)
    lrs = [0.05, 0.05, 0.01, 0.001]
    eager = _train("TwoLayerNet", "adam", "cuda", False, batches, lrs)
    monkeypatch.setattr(captured, "capturing", lambda w: False)
    frozen = _train("TwoLayerNet", "adam", "cuda", True, batches, lrs)
    assert eager[1][:3] == frozen[1][:3]  # steps 1-2 and the loss of step 3 agree
    assert any(not numpy.array_equal(a, b) for a, b in zip(eager[0], frozen[0]))  # lr 0.01 / 0.001 never seen


def test_new_shape_recaptures_or_raises(graphs):
    model = em.models.TwoLayerNet(12, 8, 5).to("cuda")
    opt = em.optim.SGD(model.parameters(), lr=0.1)

    def step(x, t):
        opt.zero_grad()
        loss = em.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        return loss

    (x4, t4), = _batches((12,), 1)
    x2, t2 = x4[:2], t4[:2]
    run = em.compile(step, warmup=1, max_graphs=1)
    for x, t in [(x4, t4), (x4, t4), (x2, t2), (x2, t2), (x4, t4)]:
        run(em.tensor(x, device="cuda"), em.tensor(t, device="cuda"))
    assert run.captures == 3  # one graph kept: going back to batch 4 captured it again
    strict = em.compile(step, on_new_shape="raise")
    strict(em.tensor(x4, device="cuda"), em.tensor(t4, device="cuda"))
    strict(em.tensor(x4, device="cuda"), em.tensor(t4, device="cuda"))
    with pytest.raises(em.errors.ShapeError, match="on_new_shape='recapture'"):
        strict(em.tensor(x2, device="cuda"), em.tensor(t2, device="cuda"))


def test_harness_target_ember_cuda_graph_equals_ember_cuda(graphs):
    from benchmarks.targets.ember_target import EmberTarget

    case = {"kind": "train", "params": {"model": "two_layer_net", "batch": 4, "input_dim": (1, 4, 4), "hidden": 6,
                                        "classes": 3, "optimizer": "adam"}}
    runs = []
    for graph in (False, True):
        bench = EmberTarget("ember-cuda-graph" if graph else "ember-cuda", device="cuda", graph=graph).build(case)
        if not graph:
            for _ in range(4):  # the graphed bench already ran 3 warm-up steps and the captured one
                bench.step()
        runs.append([bench.step().item() for _ in range(3)])
    assert runs[0] == runs[1] and fcg.launches() == 4


def _train_amp(opt_name, compiled, batches, init_scale, name="TwoLayerNet"):
    em.manual_seed(0)
    model = _model(name)[0].to("cuda")
    opt = (em.optim.Adam(model.parameters(), lr=1e-2) if opt_name == "adam"
           else em.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    scaler = em.amp.GradScaler(init_scale=init_scale, growth_interval=2, backoff_factor=2.0**-20)

    def step(x, t):
        opt.zero_grad()
        with em.amp.autocast(dtype=em.float16):
            loss = em.nn.functional.cross_entropy(model(x), t)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    run = em.compile(step) if compiled else step
    out = []
    for x, t in batches:
        out.append((run(em.tensor(x, device="cuda"), em.tensor(t, device="cuda")).item(), scaler.get_scale()))
    steps = [s.get("step") for s in opt.state.values()]
    return out, [p.numpy().copy() for p in model.parameters()], steps


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflowing steps compute inf/nan, eager and replayed
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
@pytest.mark.parametrize("init_scale", [2.0**8, 2.0**60])  # 2**60: float16 gradients overflow, steps skip
def test_amp_with_grad_scaler_replays_like_eager(graphs, opt_name, init_scale):
    batches = _batches((12,), 7)
    eager = _train_amp(opt_name, False, batches, init_scale)
    replayed = _train_amp(opt_name, True, batches, init_scale)
    assert replayed[0] == eager[0]  # losses and the scale after every step (grown, or backed off on inf)
    for a, b in zip(replayed[1], eager[1]):
        numpy.testing.assert_array_equal(a, b)
    scales = [s for _, s in eager[0]]
    assert len(set(scales)) > 1  # the scale did change inside the replayed steps
    if init_scale > 2.0**16:  # overflowing steps were skipped, then the later ones were taken
        assert scales[0] < init_scale and any(b > a for a, b in zip(scales, scales[1:]))
    em.manual_seed(0)
    start = [p.numpy() for p in em.models.TwoLayerNet(12, 8, 5).parameters()]
    assert all(not numpy.array_equal(a, b) for a, b in zip(start, replayed[1]))
    if opt_name == "adam" and init_scale == 2.0**8:
        assert replayed[2] == eager[2]


def test_a_step_that_rebinds_a_parameter_is_refused(graphs):
    w = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    with pytest.raises(CaptureError, match=r"shape \(2,\) a new array.*in place"), em.cuda.graph(em.cuda.CUDAGraph()):
        (w * w).sum().backward()
        w.data = w.data - 0.1 * w.grad.data  # every replay would start again from the captured array
    w = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):  # the in-place form is fine: each replay continues from the last
        (w * w).sum().backward()
        w.data[...] = w.data - 0.1 * w.grad.data
    g.replay()
    g.replay()
    numpy.testing.assert_allclose(w.numpy(), numpy.array([1.0, 2.0]) * 0.8 * 0.8, rtol=1e-6)


def test_deferred_upload_fills_a_table_made_in_the_capture(graphs):
    import types

    import cupy

    from ember.backends import capture_state
    from ember.backends.cupy import optim as cupy_optim

    with pytest.raises(RuntimeError, match="no CUDA graph capture"):
        em.cuda.graphs.defer_upload(cupy.empty(2), numpy.zeros(2))
    x = em.tensor([1.0, 2.0, 3.0], device="cuda")
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        with pytest.raises(RuntimeError, match="host_filled_empty"):  # graph scratch would overwrite the upload
            em.cuda.graphs.defer_upload(cupy.empty(3, dtype=numpy.float32), numpy.zeros(3, numpy.float32))
        table = capture_state.host_filled_empty(cupy, (3,), numpy.float32)  # uploaded after the capture
        em.cuda.graphs.defer_upload(table, numpy.array([10.0, 20.0, 30.0], numpy.float32))
        y = x + em.Tensor._make(table)
        fake_device = [types.SimpleNamespace(size=4, data=types.SimpleNamespace(ptr=4096 * k)) for k in (1, 2)]
        made = cupy_optim._pointer_table([fake_device], types.SimpleNamespace(
            empty=lambda shape, dtype: cupy.empty(shape, dtype),
            asarray=lambda host: pytest.fail("a host->device copy inside the capture")))
        queued = len(capture_state.UPLOADS)
    assert queued == 2 and capture_state.UPLOADS == []
    g.replay()
    assert y.tolist() == [11.0, 22.0, 33.0] and made.tolist() == [4096, 8192, 0, 4]


def test_optimizer_state_made_in_the_capture_is_zeroed_once_not_every_replay(graphs):
    ws = [em.tensor([1.0, 2.0], device=d, requires_grad=True) for d in ("cpu", "cuda")]
    opts = [em.optim.Adam([w], lr=0.1) for w in ws]
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):  # Adam's first step (moments created) inside the capture
        (ws[1] * ws[1]).sum().backward()
        opts[1].step()
    for _ in range(3):
        ws[0].grad = None
        (ws[0] * ws[0]).sum().backward()
        opts[0].step()
        g.replay()
    numpy.testing.assert_array_equal(ws[1].numpy(), ws[0].numpy())
    numpy.testing.assert_array_equal(opts[1].state[(0, 0)]["exp_avg"].get(), opts[0].state[(0, 0)]["exp_avg"])


def test_cuda_warmup_runs_the_graphs_gemms_eagerly(graphs):
    model = em.nn.Linear(12, 5).to("cuda")
    run = em.compile(lambda x: model(x).sum(), warmup=1)
    x = em.tensor(numpy.ones((4, 12), numpy.float32), device="cuda")
    run(x)  # the warm-up call: eager, through ember's cuBLAS handle (kernels chosen before capture)
    assert [c[0] for c in graphs.calls].count("gemm") == 1 and run.captures == 0
    model(x)  # outside ember.compile: CuPy's own matmul
    assert [c[0] for c in graphs.calls].count("gemm") == 1


def test_a_step_on_the_second_gpu_is_captured_there(graphs):
    w = em.tensor([1.0, 2.0], device="cuda:1", requires_grad=True)
    run = em.compile(lambda x: (x * w).sum(), warmup=0)
    assert run(em.tensor([3.0, 4.0], device="cuda:1")).item() == 11.0
    cap = fcg.last_capture()
    assert cap.stream is em.cuda.graphs._STREAMS[1] and em.cuda.current_device() == 0


def test_dropout_masks_replay_fresh_and_equal_eager_masks(graphs):
    """Dropout's mask comes from a device generator state: every replay draws the next one, as eager steps do."""
    x = em.ones((8, 8), device="cuda")

    def step(x):
        return em.nn.functional.dropout(x, 0.5)

    em.manual_seed(0)
    eager = [step(x).numpy() for _ in range(4)]
    em.manual_seed(0)
    run = em.compile(step)
    replayed = [run(x).numpy().copy() for _ in range(4)]
    assert run.captures == 1
    for a, b in zip(replayed, eager):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(replayed[2], replayed[3])  # a mask frozen at capture would repeat


def test_kernels_that_only_run_in_graphs_are_loaded_before_the_first_capture(graphs, monkeypatch):
    import cupy

    from ember.backends.cupy import kernel_spec, optim_captured

    loaded = []

    class RawKernel:
        def __init__(self, source, name, options=()):
            self.name = name

        def compile(self):
            loaded.append(self.name)

    monkeypatch.setattr(cupy, "RawKernel", RawKernel)
    monkeypatch.setattr(optim_captured, "_PRELOADED", [])
    kernel_spec._compiled.cache_clear()
    try:
        for _ in range(2):
            with em.cuda.graph(em.cuda.CUDAGraph()):
                em.ones(2, device="cuda") * 2
    finally:
        kernel_spec._compiled.cache_clear()
    assert loaded == ["ember_sgd_update_many_dev_f32", "ember_adam_update_many_dev_f32", "ember_sgd_prep_f64",
                      "ember_adam_prep_f64"]  # once per process, before the capture began
