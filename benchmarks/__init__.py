"""Benchmarks: ``python -m benchmarks NAME --help`` (one module ``NAME_bench.py`` each)."""
