"""ember.compile and ember.graphs on the CPU: replayed steps equal eager steps, bit for bit.

Each test trains two identical models from the same start, one eagerly and one
through the captured tape, and compares losses and parameters exactly. The
cases are built to fail on the classic capture bugs: a frozen scalar (Adam's
step count, a scheduled learning rate, the loss scale), a mask drawn once on
the host, a rebound parameter buffer, and a stale input batch.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.autograd.capture import CaptureError
from ember.errors import ShapeError

F = em.nn.functional


def batches(n: int, shape: tuple, classes: int = 10, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [(em.from_numpy(rng.standard_normal(shape).astype(np.float32)),
             em.from_numpy(rng.integers(0, classes, shape[0]))) for _ in range(n)]


def make(name: str, optimizer: str = "adam", **kwargs):
    em.manual_seed(0)
    model = em.models.build_model(name, (1, 28, 28), 10, **kwargs)
    if optimizer == "adam":
        opt = em.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = em.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt


def train(model, opt, data, compiled: bool, scheduler=None, scaler=None, every_step=None) -> list:
    def step(x, t):
        opt.zero_grad()
        if scaler is None:
            loss = F.cross_entropy(model(x), t)
            loss.backward()
            opt.step()
        else:
            with em.amp.autocast():
                loss = F.cross_entropy(model(x), t)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        return loss

    fn = em.compile(step) if compiled else step
    losses = []
    for i, (x, t) in enumerate(data):
        if every_step is not None:
            every_step(i)
        losses.append(fn(x, t).item())
    return losses


def assert_same_run(name: str, data: list, optimizer: str = "adam", **kw) -> tuple:
    runs = []
    for compiled in (False, True):
        model, opt = make(name, optimizer)
        hooks = {k: v(model, opt) if callable(v) else v for k, v in kw.items()}
        losses = train(model, opt, data, compiled, **hooks)
        runs.append((losses, [p.numpy().copy() for p in model.parameters()], model, opt))
    (l0, p0, *_), (l1, p1, *_) = runs
    assert l0 == l1
    for a, b in zip(p0, p1):
        np.testing.assert_array_equal(a, b)
    return runs


def test_two_layer_net_replays_equal_eager_steps() -> None:
    runs = assert_same_run("two_layer_net", batches(5, (16, 784)))
    assert len(set(runs[1][0])) == 5  # every replay computed a new loss (no stale batch)


def test_simple_convnet_with_momentum_replays_equal_eager_steps() -> None:
    assert_same_run("simple_convnet", batches(4, (6, 1, 28, 28)), optimizer="sgd")


def test_deep_convnet_with_dropout_draws_a_new_mask_every_replay() -> None:
    data = batches(4, (4, 1, 28, 28))
    data = [data[0]] * 4  # one batch: only dropout makes the losses differ between steps
    (eager, _, *_), (replayed, _, *_) = assert_same_run("deep_convnet", data)
    assert len(set(replayed)) == 4


def test_a_learning_rate_schedule_is_followed_not_frozen() -> None:
    def scheduler(model, opt):
        return em.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    runs = assert_same_run("two_layer_net", batches(5, (8, 784)), scheduler=scheduler)
    assert runs[1][3].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**5, rel=1e-12)


def test_a_learning_rate_changed_between_replays_is_used() -> None:
    def halve(model, opt):
        def change(i):
            for g in opt.param_groups:
                g["lr"] = 0.05 / (i + 1)
        return change

    assert_same_run("two_layer_net", batches(5, (8, 784)), optimizer="sgd", every_step=halve)


def test_loss_scaling_follows_the_scale_after_overflow_and_growth() -> None:
    scalers = []

    def scaler(model, opt):  # from 2**16, growing every 2 clean steps, float16 grads overflow now and then
        scalers.append(em.amp.GradScaler(init_scale=2.0**16, growth_interval=2))
        return scalers[-1]

    scales = []
    assert_same_run("two_layer_net", batches(8, (8, 784)), scaler=scaler,
                    every_step=lambda model, opt: lambda i: scales.append(scalers[-1].get_scale()))
    replayed = scales[8:]
    assert max(replayed) > replayed[0] and any(b < a for a, b in zip(replayed, replayed[1:]))  # grew and backed off


def test_a_rebound_parameter_is_read_at_each_replay() -> None:
    def rebind(model, opt):
        def change(i):
            if i == 3:  # replace a parameter's array outright (as load_state_dict may)
                p = next(iter(model.parameters()))
                p.data = np.full_like(p.data, 0.01)
        return change

    assert_same_run("two_layer_net", batches(5, (8, 784)), optimizer="sgd", every_step=rebind)


def test_batch_norm_statistics_and_counters_advance_on_replay() -> None:
    def build():
        em.manual_seed(0)
        model = em.nn.Sequential(em.nn.Conv2d(1, 4, 3), em.nn.BatchNorm2d(4), em.nn.ReLU(), em.nn.Flatten(),
                                 em.nn.Linear(4 * 26 * 26, 10))
        return model, em.optim.SGD(model.parameters(), lr=0.05)

    data = batches(4, (4, 1, 28, 28))
    states = []
    for compiled in (False, True):
        model, opt = build()
        train(model, opt, data, compiled)
        states.append({k: v.numpy().copy() for k, v in model.state_dict().items()})
    for key in states[0]:
        np.testing.assert_array_equal(states[0][key], states[1][key], err_msg=key)
    assert states[1]["1.num_batches_tracked"] == 4


def test_a_new_input_shape_is_captured_again_or_refused() -> None:
    model, opt = make("two_layer_net", "sgd")
    step = em.compile(lambda x, t: F.cross_entropy(model(x), t), warmup=0)
    (x8, t8), = batches(1, (8, 784))
    (x4, t4), = batches(1, (4, 784))
    step(x8, t8), step(x4, t4), step(x8, t8)
    assert step.captures == 2
    strict = em.compile(lambda x, t: F.cross_entropy(model(x), t), warmup=0, on_new_shape="raise")
    strict(x8, t8)
    with pytest.raises(ShapeError, match="ember.compile: expected arguments like the captured call"):
        strict(x4, t4)


def test_the_cache_is_bounded() -> None:
    model, _ = make("two_layer_net", "sgd")
    step = em.compile(lambda x: model(x).sum(), warmup=0, max_graphs=2)
    for n in (1, 2, 3, 1):
        step(em.ones((n, 784)))
    assert step.captures == 4 and len(step._graphs) == 2


def test_low_level_graph_refreshes_static_outputs() -> None:
    w = em.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    static_x = em.ones((1, 2))
    g = em.graphs.Graph()
    with em.graphs.graph(g):
        static_y = (static_x @ w).sum()
        static_y.backward()
    assert static_y.item() == 10.0
    static_x.copy_(em.tensor([[2.0, 0.0]]))
    w.grad = None
    g.replay()
    assert static_y.item() == 6.0  # [2, 0] @ w = [2, 4]
    np.testing.assert_array_equal(w.grad.numpy(), [[2.0, 2.0], [0.0, 0.0]])


def test_what_cannot_be_captured_says_so() -> None:
    x = em.ones(3, requires_grad=True)
    with pytest.raises(CaptureError, match="create_graph"):
        with em.graphs.graph(em.graphs.Graph()):
            (x * x).sum().backward(create_graph=True)
    with pytest.raises(RuntimeError, match="captures do not nest"):
        with em.graphs.graph(em.graphs.Graph()):
            with em.graphs.graph(em.graphs.Graph()):
                pass
    with pytest.raises(RuntimeError, match="nothing captured yet"):
        em.graphs.Graph().replay()


@pytest.mark.parametrize("kwargs,message", [({"warmup": -1}, "warmup"), ({"max_graphs": 0}, "max_graphs"),
                                            ({"on_new_shape": "grow"}, "on_new_shape")])
def test_bad_compile_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        em.compile(lambda: None, **kwargs)
