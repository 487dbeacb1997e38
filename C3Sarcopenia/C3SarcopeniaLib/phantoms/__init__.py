"""Synthetic neck phantoms with known C3 and muscle, for tests, training and benchmarks."""
