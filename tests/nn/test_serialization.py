"""ember.save / ember.load: round trips, nested checkpoints, atomic writes, rejection of bad files."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.nn import functional as F


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.25), nn.Linear(6, 3))


def test_state_dict_round_trip_keeps_dtypes_and_order(tmp_path):
    m = model()
    m(em.randn(5, 4))
    path = tmp_path / "model.ckpt"
    em.save(m.state_dict(), path)
    assert os.listdir(tmp_path) == ["model.ckpt"]  # exact name, no temp file left behind
    sd = em.load(path)
    assert isinstance(sd, OrderedDict) and list(sd) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert isinstance(sd[k], em.Tensor) and sd[k].dtype == v.dtype and sd[k].device == em.device("cpu")
        assert not sd[k].requires_grad
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy())
    fresh = model()
    fresh.load_state_dict(sd)
    fresh.eval(), m.eval()
    x = em.randn(3, 4)
    np.testing.assert_array_equal(fresh(x).numpy(), m(x).numpy())


def test_nested_checkpoint_with_plain_values(tmp_path):
    obj = {
        "model": model().state_dict(),
        "optimizer": {"state": {"0.weight": {"momentum_buffer": em.ones(6, 4)}}, "param_groups": [{"lr": 0.1, "params": ["0.weight"]}]},
        "epoch": 3,
        "rng": em.get_rng_state(),
        "misc": [None, True, "text", 2.5, (1, 2), float("inf"), float("nan")],
        7: "int key",
        "half": em.ones(2, dtype=em.float16),
        "flags": em.tensor([True, False]),
        "array": np.arange(4, dtype=np.int32),
        "scalar": np.float32(1.5),
    }
    path = tmp_path / "ckpt.npz"
    em.save(obj, path)
    back = em.load(path)
    assert list(back) == list(obj)
    assert back["epoch"] == 3 and back[7] == "int key"
    assert back["rng"] == obj["rng"]  # 128-bit PCG state survives (JSON ints are unbounded)
    assert back["misc"][:5] == [None, True, "text", 2.5, (1, 2)] and isinstance(back["misc"][4], tuple)
    assert back["misc"][5] == float("inf") and np.isnan(back["misc"][6])
    assert back["optimizer"]["param_groups"] == [{"lr": 0.1, "params": ["0.weight"]}]
    np.testing.assert_array_equal(back["optimizer"]["state"]["0.weight"]["momentum_buffer"].numpy(), np.ones((6, 4)))
    assert back["half"].dtype == em.float16 and back["flags"].dtype == em.bool_
    assert isinstance(back["array"], np.ndarray) and back["array"].dtype == np.int32
    assert back["scalar"] == np.float32(1.5) and isinstance(back["scalar"], np.float32)
    with np.load(path, allow_pickle=False) as z:  # readable with plain NumPy, keys flattened
        assert "model/0.weight" in z.files and "optimizer/state/0.weight/momentum_buffer" in z.files


def test_save_does_not_touch_the_live_model(tmp_path):
    m = model()
    before = {k: (v.data, v._version[0], v.requires_grad) for k, v in m.state_dict().items()}
    em.save({"model": m.state_dict()}, tmp_path / "c.npz")
    for k, v in m.state_dict().items():
        assert (v.data, v._version[0], v.requires_grad) == before[k]


def test_resumed_training_is_bit_exact(tmp_path):
    """model + optimizer state + step + rng saved mid-run; resuming reproduces the uninterrupted run."""
    data = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    labels = em.tensor([0, 1, 2, 0, 1, 2, 0, 1])

    def step(m, velocity):
        loss = F.cross_entropy(m(em.tensor(data)), labels)
        m.zero_grad()
        loss.backward()
        with em.no_grad():
            for name, p in m.named_parameters():
                v = velocity.setdefault(name, em.zeros_like(p))
                v.mul_(0.9).add_(p.grad)
                p.sub_(v * 0.1)
        return loss.item()

    em.manual_seed(1)
    a, va = model(), {}
    for _ in range(3):
        step(a, va)
    em.save({"model": a.state_dict(), "optimizer": va, "step": 3, "rng": em.get_rng_state()}, tmp_path / "c.npz")
    expected = [step(a, va) for _ in range(3)]

    ck = em.load(tmp_path / "c.npz")
    em.manual_seed(123)  # clobber the generator: the checkpoint must restore it
    b = model()
    b.load_state_dict(ck["model"])
    em.set_rng_state(ck["rng"])
    resumed = [step(b, dict(ck["optimizer"])) for _ in range(3)]
    assert resumed == expected and ck["step"] == 3
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy(), err_msg=k)


def test_map_location_and_errors_on_unsupported_objects(tmp_path):
    em.save({"w": em.ones(2)}, tmp_path / "c.npz")
    assert em.load(tmp_path / "c.npz", map_location="cpu")["w"].device == em.device("cpu")
    with pytest.raises(TypeError, match=r"save: cannot store a set at 'bad'"):
        em.save({"bad": {1, 2}}, tmp_path / "d.npz")
    with pytest.raises(TypeError, match="save: cannot store an array of dtype object at 'obj'"):
        em.save({"obj": np.array([{}], dtype=object)}, tmp_path / "d.npz")
    with pytest.raises(TypeError, match="dict keys must be"):
        em.save({(1, 2): 3}, tmp_path / "d.npz")
    assert not (tmp_path / "d.npz").exists() and os.listdir(tmp_path) == ["c.npz"]
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        em.load(tmp_path / "missing.npz")


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    em.save({"epoch": 1, "w": em.ones(3)}, path)
    original = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        em.save({"epoch": 2, "w": em.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["c.npz"]  # the temporary file was removed
    assert em.load(path)["epoch"] == 1

    def failing_savez(*args, **kwargs):
        raise RuntimeError("crash mid-write (simulated)")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(RuntimeError, match="simulated"):
        em.save({"epoch": 3}, path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["c.npz"]


def test_load_rejects_bad_files(tmp_path):
    good = tmp_path / "good.npz"
    em.save({"w": em.ones(100, 10)}, good)
    data = good.read_bytes()

    cases = {
        "truncated.npz": data[: len(data) // 2],
        "garbage.npz": b"not a zip file at all" * 10,
        "empty.npz": b"",
        "pickle.npz": pickle.dumps({"w": np.ones(3)}),
    }
    buf = io.BytesIO()
    np.savez(buf, obj=np.array([{"evil": 1}], dtype=object))  # object arrays are pickled inside
    cases["object.npz"] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    cases["bare.npy"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, w=np.ones(3))  # a valid npz but not an ember checkpoint
    cases["foreign.npz"] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("__ember_meta__.npy", b"\x93NUMPY garbage")
    cases["badmeta.npz"] = buf.getvalue()

    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match="load: .*" + name.replace(".", r"\.") + ".* is not a valid ember checkpoint"):
            em.load(p)
