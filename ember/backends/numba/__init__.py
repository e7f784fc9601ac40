"""The Numba CPU backend: compiled versions of the reference kernels (numba is imported on first use)."""
