"""Numba kernels of the engine (kernels.py) and the time loops that call them (loops.py)."""
