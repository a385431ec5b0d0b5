"""Task generators (time-major inputs) and their losses. See reference/cells.md section 7."""
