"""CPU-only machinery shared by the NumPy and Numba backends: thread policy, batch splitting, allocator."""
