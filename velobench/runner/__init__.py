"""Loops and schedulers: one run (run, loop), a sweep (matrix), tuning, load generation, think."""
