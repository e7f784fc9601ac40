"""``compare``: run one op in ember and in PyTorch on the same float64 inputs; check values and gradients.

Import after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import numpy
import torch

import ember as em


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _host(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def compare(em_fn, torch_fn, arrays, *, grad=True, rtol=1e-9, atol=1e-12, seed=0):
    """``em_fn(*tensors)`` and ``torch_fn(*tensors)`` agree in values, dtypes' kind and input gradients.

    Float64 arrays in ``arrays`` become leaves that require grad (when ``grad``);
    anything else is passed as it is to both.  The gradient is that of a random
    weighted sum of every floating output.
    """
    results = []
    for lib in ("em", "torch"):
        leaves = []
        args = []
        for a in arrays:
            if isinstance(a, numpy.ndarray) and a.dtype == numpy.float64:
                t = (em.tensor(a, dtype=em.float64, requires_grad=grad) if lib == "em"
                     else torch.tensor(a, dtype=torch.float64, requires_grad=grad))
                leaves.append(t)
                args.append(t)
            elif isinstance(a, numpy.ndarray):
                args.append(em.tensor(a) if lib == "em" else torch.from_numpy(a.copy()))
            else:
                args.append(a)
        outs = _outputs((em_fn if lib == "em" else torch_fn)(*args))
        rng = numpy.random.default_rng(seed)
        loss = None
        for o in outs:
            if o.dtype.is_floating_point if isinstance(o, torch.Tensor) else o.dtype.kind == "f":
                w = rng.normal(size=tuple(o.shape))
                w = em.tensor(w, dtype=em.float64) if lib == "em" else torch.tensor(w, dtype=torch.float64)
                term = (o * w).sum()
                loss = term if loss is None else loss + term
        if grad and leaves and loss is not None and loss.requires_grad:
            loss.backward()
        grads = [None if t.grad is None else _host(t.grad) for t in leaves]
        results.append(([_host(o) for o in outs], grads))
    (ye, ge), (yt, gt) = results
    assert len(ye) == len(yt), f"ember gave {len(ye)} outputs, torch {len(yt)}"
    for k, (a, b) in enumerate(zip(ye, yt)):
        assert a.shape == b.shape, f"output {k}: ember shape {a.shape}, torch {b.shape}"
        assert (a.dtype.kind == "f") == (b.dtype.kind == "f"), f"output {k}: ember {a.dtype}, torch {b.dtype}"
        if a.dtype.kind in "iub":
            numpy.testing.assert_array_equal(a, b, err_msg=f"output {k}")
        else:
            numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {k}")
    for k, (a, b) in enumerate(zip(ge, gt)):
        if a is None or b is None:  # torch leaves .grad None where no path leads; ember may too
            other = a if b is None else b
            assert other is None or not numpy.any(other), f"grad {k}: ember {a}, torch {b}"
            continue
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"grad of input {k}")
    return ye
