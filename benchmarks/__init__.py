"""Benchmarks against a real Redis: `make bench`, or `python -m benchmarks.<name>`."""
