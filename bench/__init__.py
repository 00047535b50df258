"""The benchmark suite: `bench/run [--quick]` (see bench/run and bench/common.py)."""
