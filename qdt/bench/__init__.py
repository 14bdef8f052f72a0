"""Benchmarks run from the CLI (`qdt bench ...`); results land in benchmarks/results/."""
