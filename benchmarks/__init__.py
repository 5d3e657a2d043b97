"""The benchmarks: modules that print what they measure, run from the repository root as ``python -m benchmarks.X``."""
