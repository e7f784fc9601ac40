"""``Optimizer``: parameter groups, per-parameter state, ``step`` / ``zero_grad`` and state dicts.

A subclass supplies three things: ``_check_group`` (validate one group's
hyper-parameters), ``_state_schema`` (the state entries a parameter holds once
it has been updated) and ``_update`` (one in-place update of one parameter's
raw array); it may also fuse a batch of parameters in ``_update_many`` (SGD and
Adam hand a whole batch to one multi-tensor launch on CUDA).  The base class
does everything else the same way for every optimizer:

* ``params`` may be Tensors, ``(name, Tensor)`` pairs (``named_parameters()``)
  or dicts (parameter groups, each with its own hyper-parameters).
* State is keyed by position ``(group index, parameter index)``, never by
  ``id()``, so it survives a checkpoint round trip; parameter names, when
  given, travel in the state dict and are checked on load.
* Updates run on the backend arrays (NumPy or CuPy) under ``no_grad``, in
  place, and bump the parameter's version counter so autograd sees the change.
* float16 parameters are updated through a float32 working copy with float32
  state (no master weights yet: small updates may still round away).
* ``SGD`` and ``Adam``/``AdamW`` hand the arithmetic of ``_update`` to the
  backend's ``optim`` kernels (the formulas live in ``ember.backends.reference.optim``;
  Numba and CuPy run compiled copies with the same results).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy

from ember.autograd.capture import replayable
from ember.autograd import enable_grad, no_grad
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DTypeError, ShapeError
from ember.optim._helpers import as_count, as_index, check_nonnegative, describe, host_copy, to_host

ParamsT = Iterable[Any]

ARRAY = "array"  # a state entry holding an array shaped like the parameter
COUNT = "count"  # a state entry holding a Python int (the step counter)


class Optimizer:
    """Base class of ember's optimizers (PyTorch's ``torch.optim.Optimizer`` API).

    Attributes:
        defaults: the hyper-parameters a group gets when it does not set them.
        param_groups: list of dicts, each with ``"params"`` (a list of Tensors),
            optionally ``"param_names"``, and the hyper-parameters.
        state: per-parameter state, keyed by ``(group index, parameter index)``.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self._check_group(self.defaults)
        self.state: dict[tuple[int, int], dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: expected params to be an iterable of Tensors, of (name, Tensor) pairs or of "
                f"dicts, got a single Tensor of shape {tuple(params.shape)}; wrap it in a list"
            )
        if isinstance(params, (dict, set, str)):
            raise TypeError(
                f"{self._name}: expected params to be an iterable of Tensors, of (name, Tensor) pairs or of "
                f"dicts, got a {type(params).__name__}" + ("; sets have no stable order, use a list" if
                                                           isinstance(params, set) else "")
            )
        try:
            items = list(params)
        except TypeError:
            raise TypeError(
                f"{self._name}: expected params to be an iterable of Tensors, of (name, Tensor) pairs or of "
                f"dicts, got {type(params).__name__}"
            ) from None
        if not items:
            raise ValueError(f"{self._name}: got an empty parameter list")
        groups = items if all(isinstance(i, dict) for i in items) else [{"params": items}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ---------------------------------------------------------- param groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones come from ``defaults``).

        Args:
            param_group: ``{"params": Tensors or (name, Tensor) pairs, **hyper-parameters}``.

        Raises:
            TypeError: a parameter is not a Tensor or not floating point.
            ValueError: a parameter is not a leaf, is already in a group, or a
                hyper-parameter is out of range.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}.add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params, names = self._split_params(group.get("params"), len(self.param_groups))
        if "param_names" in group:
            if names is not None:
                raise ValueError(f"{self._name}: a group gives both named params and 'param_names'")
            names = [str(n) for n in group["param_names"]]
            if len(names) != len(params):
                raise ValueError(
                    f"{self._name}: group {len(self.param_groups)} has {len(params)} params but "
                    f"{len(names)} param_names"
                )
        self._check_naming_consistent(names is not None)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            self._check_param(p, len(self.param_groups), i)
            if id(p) in seen:
                raise ValueError(
                    f"{self._name}: parameter {i} of group {len(self.param_groups)} (shape {tuple(p.shape)}) "
                    "appears more than once across parameter groups"
                )
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        group.pop("params", None)
        group.pop("param_names", None)
        if names is not None:
            group["param_names"] = names
        group["params"] = params
        self.param_groups.append(group)

    def _split_params(self, raw: Any, gi: int) -> tuple[list[Tensor], list[str] | None]:
        """A group's ``params`` as a list of Tensors, plus their names when given as pairs."""
        if raw is None:
            raise ValueError(f"{self._name}: parameter group {gi} has no 'params' entry")
        if isinstance(raw, Tensor):
            return [raw], None
        if isinstance(raw, (set, dict, str)):
            raise TypeError(
                f"{self._name}: group {gi} params must be an ordered iterable (a list), got {type(raw).__name__}"
            )
        items = list(raw)
        pairs = [isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in items]
        if items and all(pairs):
            return [p for _, p in items], [n for n, _ in items]
        if any(pairs):
            raise TypeError(f"{self._name}: group {gi} mixes (name, Tensor) pairs and bare Tensors")
        return items, None

    def _check_naming_consistent(self, named: bool) -> None:
        if self.param_groups and ("param_names" in self.param_groups[0]) != named:
            raise ValueError(
                f"{self._name}: either every parameter group gives parameter names (named_parameters()) or "
                "none does"
            )

    def _check_param(self, p: Any, gi: int, i: int) -> None:
        where = f"parameter {i} of group {gi}"
        if not isinstance(p, Tensor):
            raise TypeError(f"{self._name}: expected {where} to be a Tensor, got {type(p).__name__}")
        if p.dtype.kind != "f":
            raise DTypeError(
                f"{self._name}: expected {where} to be a floating point Tensor, got dtype {p.dtype}"
            )
        if not p.is_leaf:
            raise ValueError(
                f"{self._name}: can't optimize {where}: it is a non-leaf Tensor (shape {tuple(p.shape)}, made by "
                f"{type(p.grad_fn).__name__}); optimize the leaf, or pass .detach().requires_grad_()"
            )

    # -------------------------------------------------------- subclass hooks
    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError/TypeError when a hyper-parameter of ``group`` is invalid."""
        check_nonnegative(self._name, "lr", group.get("lr", 0.0))

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        """The entries (``ARRAY`` or ``COUNT``) of a parameter's state after its first update."""
        return {}

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        """Update the working array ``w`` in place from the gradient ``g`` (never written to)."""
        raise NotImplementedError

    def _update_many(self, group: dict[str, Any], ws: list, gs: list, states: list[dict], xp: Any) -> None:
        """``_update`` on each parameter of a batch (one backend, device and dtype); subclasses may fuse them."""
        for w, g, state in zip(ws, gs, states):
            self._update(group, w, g, state, xp)

    # --------------------------------------------------------------- stepping
    @replayable
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad.detach_()
                    g.data.fill(0)
                    g._bump_version()

    @replayable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient.

        Args:
            closure: optional function that re-evaluates the model and returns the
                loss (it runs with grad enabled, before the update).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for gi, group in enumerate(self.param_groups):
                self._step_group(group, gi)
        return loss

    def _step_group(self, group: dict[str, Any], gi: int) -> None:
        """Update the group's parameters that have a gradient, in batches for ``_update_many``.

        A batch holds the parameters of one array type, device and dtype, so a backend
        with a multi-tensor kernel updates it in one launch.  Each parameter's arrays are
        read once, here (a step's bookkeeping is most of the small models' update).
        """
        batches: dict[tuple, list[tuple]] = {}
        for pi, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            x, g = p.data, grad.data
            if g.shape != x.shape:
                raise ShapeError(
                    f"{self._name}.step: expected the grad of parameter {pi} of group {gi} to have shape "
                    f"{tuple(x.shape)}, got {tuple(g.shape)}"
                )
            kind = type(x)
            device = None if kind is numpy.ndarray else getattr(getattr(x, "device", None), "id", None)
            key = (kind, device, x.dtype)
            batch = batches.get(key)
            if batch is None:
                batches[key] = batch = []
            batch.append((pi, p, x, g))
        for batch in batches.values():
            self._step_batch(group, gi, batch)

    def _step_batch(self, group: dict[str, Any], gi: int, batch: list[tuple]) -> None:
        """``_update_many`` on ``(index, parameter, array, grad array)`` entries of one array type, device, dtype."""
        x0 = batch[0][2]
        xp = backend_of(x0).xp
        dtype = self._state_dtype(x0.dtype)
        state_of = self.state
        if dtype == x0.dtype:
            ws = [entry[2] for entry in batch]
            gs = [entry[3] if entry[3].dtype == dtype else entry[3].astype(dtype) for entry in batch]
        else:
            ws = [entry[2].astype(dtype) for entry in batch]
            gs = [entry[3].astype(dtype) for entry in batch]
        states = [state_of.get((gi, entry[0]), {}) for entry in batch]
        self._update_many(group, ws, gs, states, xp)
        for (pi, p, x, _), w, state in zip(batch, ws, states):
            if state:
                state_of[(gi, pi)] = state
            if w is not x:
                xp.copyto(x, w, casting="same_kind")
            p._bump_version()

    @staticmethod
    def _state_dtype(dtype: numpy.dtype) -> numpy.dtype:
        """The dtype updates are computed in and state is kept in: float32 for float16 params."""
        return numpy.dtype(numpy.float32) if dtype == numpy.float16 else dtype

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """A checkpointable copy of the optimizer: host (NumPy) arrays and plain Python values.

        Returns:
            ``{"state": {index: {name: array or int}}, "param_groups": [{hyper-parameters...,
            "params": [index, ...]}]}``; indices number the parameters across groups in
            order, and ``"param_names"`` appears in each group when names were given.
        """
        groups, index, start = [], {}, 0
        for gi, group in enumerate(self.param_groups):
            packed = {k: (list(v) if k == "param_names" else v) for k, v in group.items() if k != "params"}
            n = len(group["params"])
            packed["params"] = list(range(start, start + n))
            index.update({(gi, pi): start + pi for pi in range(n)})
            start += n
            groups.append(packed)
        state = {}
        for key in sorted(self.state):
            if key in index:
                state[index[key]] = {name: host_copy(v) for name, v in self.state[key].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict`` (this optimizer keeps its params).

        Arrays are copied to each parameter's device and dtype; the optimizer is left
        unchanged when anything does not fit.

        Raises:
            ValueError: the group count, a group's parameter count, a parameter name,
                a state entry or a state array's shape does not match this optimizer.
        """
        where = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups', got {describe(state_dict)}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{where}: the state dict has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        new_groups, position = [], {}
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            ids = list(saved["params"])
            if len(ids) != len(group["params"]):
                raise ValueError(
                    f"{where}: parameter group {gi} has {len(ids)} parameters in the state dict but "
                    f"{len(group['params'])} in this optimizer"
                )
            names, saved_names = group.get("param_names"), saved.get("param_names")
            if names is not None and saved_names is not None:
                for pi, (a, b) in enumerate(zip(names, saved_names)):
                    if a != b:
                        raise ValueError(
                            f"{where}: parameter {pi} of group {gi} is named {a!r} here but {b!r} in the state dict"
                        )
            new = dict(group)
            for k, v in saved.items():
                if k not in ("params", "param_names"):
                    new[k] = tuple(v) if isinstance(group.get(k), tuple) and isinstance(v, list) else v
            self._check_group(new)
            new["params"] = group["params"]
            new_groups.append(new)
            for pi, saved_id in enumerate(ids):
                position[as_index(saved_id, where)] = (gi, pi)
        new_state = {}
        for saved_id, entries in state_dict["state"].items():
            idx = as_index(saved_id, where)
            if idx not in position:
                raise ValueError(f"{where}: the state dict has state for parameter {idx}, which no group lists")
            gi, pi = position[idx]
            new_state[(gi, pi)] = self._load_param_state(new_groups[gi], gi, pi, idx, entries)
        self.param_groups[:] = new_groups
        self.state = new_state

    def _load_param_state(self, group: dict, gi: int, pi: int, idx: int, entries: Any) -> dict[str, Any]:
        p = group["params"][pi]
        label = f"{self._name}.load_state_dict: state of parameter {idx} (group {gi}, index {pi}"
        if "param_names" in group:
            label += f", {group['param_names'][pi]!r}"
        label += ")"
        schema = self._state_schema(group)
        if not isinstance(entries, dict) or set(entries) != set(schema):
            got = sorted(entries) if isinstance(entries, dict) else describe(entries)
            raise ValueError(f"{label}: expected entries {sorted(schema)}, got {got}")
        backend = backend_of(p.data)
        dtype = self._state_dtype(p.dtype)
        out = {}
        for name, kind in schema.items():
            value = entries[name]
            if kind == COUNT:
                out[name] = as_count(value, f"{label} entry {name!r}")
                continue
            host = to_host(value)
            if host is None or host.dtype.kind not in "fiu":
                raise ValueError(f"{label}: expected entry {name!r} to be a numeric array, got {describe(value)}")
            if tuple(host.shape) != tuple(p.shape):
                raise ValueError(
                    f"{label}: expected entry {name!r} of shape {tuple(p.shape)}, got {tuple(host.shape)}"
                )
            out[name] = backend.asarray(numpy.array(host, dtype=dtype, copy=True))
        return out

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for gi, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            for key in sorted(k for k in group if k not in ("params", "param_names")):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"
