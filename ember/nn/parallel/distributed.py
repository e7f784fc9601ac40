"""``DistributedDataParallel``: the same model in every rank, gradients averaged each step.

At construction rank 0's parameters and buffers are broadcast, so every rank
starts from the same model whatever its seed. During backward each parameter's
post-accumulate-grad hook marks it ready; a bucket whose parameters are all
ready starts its allreduce at once (buckets start strictly in order, so every
rank issues the same collectives in the same order). When backward ends, a
queued engine callback starts the buckets still waiting (parameters that got no
gradient this step contribute zeros, so nothing deadlocks), waits for all of
them, divides by the world size and writes the averages back as ``.grad``.

Trade-off: every parameter in a reduced bucket ends the step with a gradient,
zeros where no rank produced one (PyTorch leaves such a gradient ``None``); the
ranks stay identical without an extra collective to learn who used what.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ember import distributed as dist
from ember.autograd.hooks import queue_callback
from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.nn.module import Module
from ember.nn.parallel.buckets import Bucket, build_buckets

_FIRST_BUCKET_MB = 1.0


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the default process group.

    Args:
        module: the model; reach it as ``ddp.module``.
        bucket_cap_mb: largest gradient bucket, in MiB (the first bucket is at most 1 MiB).
        broadcast_buffers: copy rank 0's buffers (batch-norm statistics) to every rank
            before each forward.

    Raises:
        RuntimeError: the process group is not initialised.
        ValueError: ``bucket_cap_mb`` is not positive.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: call ember.distributed.init_process_group() first")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: expected bucket_cap_mb > 0, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self._world = dist.get_world_size()
        params, seen = [], set()
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        cap = int(bucket_cap_mb * 2**20)
        self._buckets: list[Bucket] = build_buckets(params, cap, min(cap, int(_FIRST_BUCKET_MB * 2**20)))
        self._sync_state(list(module.parameters()) + list(module.buffers()))
        self._require_sync = True
        self._armed = False
        self._next_bucket = 0
        self._hook_handles = []
        for b, bucket in enumerate(self._buckets):
            for k, p in enumerate(bucket.params):
                self._hook_handles.append(p.register_post_accumulate_grad_hook(self._ready_hook(b, k)))

    @staticmethod
    def _sync_state(tensors: list) -> None:
        """Broadcast rank 0's values of ``tensors`` into every rank (in place)."""
        with no_grad():
            for t in tensors:
                dist.broadcast(t, src=0)

    def _ready_hook(self, b: int, k: int) -> Any:
        def hook(param: Tensor) -> None:
            if not self._require_sync:
                return
            if not self._armed:
                self._armed = True
                queue_callback(self._finish_reduction)
            self._buckets[b].mark_ready(k)
            self._launch_ready_buckets()

        return hook

    def _launch(self, bucket: Bucket) -> None:
        from ember.distributed.process_group import _group

        buffer = bucket.fill()
        transport, via_host = _group("DistributedDataParallel").transport_for(buffer)
        if via_host:  # CUDA gradients over MPI: reduce a host copy
            bucket.host = buffer.get()
            bucket.wait = transport.all_reduce_start(bucket.host, "sum")
        else:
            bucket.host = None
            bucket.wait = transport.all_reduce_start(buffer, "sum")

    def _launch_ready_buckets(self) -> None:
        while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].complete:
            self._launch(self._buckets[self._next_bucket])
            self._next_bucket += 1

    def _finish_reduction(self) -> None:
        """End of backward: start what is left, wait for everything, write averaged grads."""
        try:
            while self._next_bucket < len(self._buckets):
                self._launch(self._buckets[self._next_bucket])
                self._next_bucket += 1
            for bucket in self._buckets:
                bucket.wait()
                if bucket.host is not None:
                    bucket.buffer.set(bucket.host)
                flat = bucket.buffer
                flat /= flat.dtype.type(self._world)
                for p, off, n in zip(bucket.params, bucket.offsets, bucket.sizes):
                    p.grad = Tensor._make(flat[off : off + n].reshape(p.data.shape).copy())
        finally:
            for bucket in self._buckets:
                bucket.reset()
            self._armed = False
            self._next_bucket = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.broadcast_buffers and self._world > 1:
            buffers = list(self.module.buffers())
            if buffers:
                self._sync_state(buffers)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward only accumulates local gradients; the first backward after it
        averages the accumulated sum (gradient accumulation without extra allreduces)."""
        previous = self._require_sync
        self._require_sync = False
        try:
            yield
        finally:
            self._require_sync = previous

    def extra_repr(self) -> str:
        sizes = ", ".join(str(b.numel) for b in self._buckets)
        return f"world_size={self._world}, buckets=[{sizes}] elements"
