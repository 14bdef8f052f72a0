"""Experiments built on training: sweeps on Ray, the benchmarks, the demo report, tables, plots
and statistics."""
