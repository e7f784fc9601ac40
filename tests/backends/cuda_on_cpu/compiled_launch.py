"""Route the kernel wrappers' launches to the host-compiled CUDA sources, with a chosen launch shape."""

from __future__ import annotations

from typing import Any

from host_cuda import kernel
from kernel_specs import all_kernel_specs, kernel_modules

# grid-stride launch shapes: (blocks, threads) for a given total
LAUNCH_SHAPES = {
    "device_config": None,  # what the GPU launcher would use (launch_config with the spec's max_blocks)
    "one_block": lambda total: (1, 256),
    "many_small_blocks": lambda total: (-(-total // 16) + 1, 16),  # one idle block past the work
    "grid_smaller_than_work": lambda total: (2, 3),  # every thread loops many times
}


def patch_launches(monkeypatch: Any, shape: str, seen: set | None = None) -> None:
    """Make every kernel module's ``launch``/``launch_blocks`` run the compiled source.

    ``seen`` (optional) collects the names of the kernels that ran.
    """
    source, modules = kernel_modules()
    specs = tuple(all_kernel_specs())
    pick = LAUNCH_SHAPES[shape]

    def launch(spec: Any, dtype: Any, total: int, args: tuple) -> None:
        if total == 0:
            return
        if seen is not None:
            seen.add(spec.name)
        grid, block = pick(total) if pick else source.launch_config(total, max_blocks=spec.max_blocks)
        kernel(specs, spec, dtype)(grid, block, *args, total)

    def launch_blocks(spec: Any, dtype: Any, blocks: int, args: tuple) -> None:
        if blocks == 0:
            return
        if seen is not None:
            seen.add(spec.name)
        kernel(specs, spec, dtype)(blocks, source.BLOCK, *args)

    patched = 0
    for module in modules:
        for name, fn in (("launch", launch), ("launch_blocks", launch_blocks)):
            if getattr(module, name, None) is getattr(source, name):
                monkeypatch.setattr(module, name, fn)
                patched += 1
    if patched == 0:
        raise RuntimeError("compiled_launch: no kernel module calls the source module's launch functions")
