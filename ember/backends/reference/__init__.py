"""The NumPy reference backend: the readable kernels every other backend must match."""
