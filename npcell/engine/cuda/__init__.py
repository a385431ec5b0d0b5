"""CuPy ElementwiseKernels of the engine (built on first use; importing never imports CuPy)."""
