"""Training: the loop, its configuration, run folders and sweeps (see DESIGN section 1)."""
