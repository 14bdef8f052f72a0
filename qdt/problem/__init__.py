"""The placement problem: instances, the generator, the system model and reward, exact and
heuristic solvers, and the multi-agent environment (problem → circuits → sim → executors → rl)."""
