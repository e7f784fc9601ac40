"""The CuPy GPU backend and its CUDA kernels (imported only when a CUDA device is asked for)."""
