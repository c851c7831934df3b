"""Benchmarks of the harness against baselines measured in the same run (ratios, not timed tests)."""
