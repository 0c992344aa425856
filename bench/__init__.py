"""Benchmarks: `make bench` (or `python -m bench [name ...]`). Not tests: they measure."""
