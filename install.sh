#!/usr/bin/env bash
# Set up qdt in ./.venv: the package, its test tools and the peer stacks the benchmarks compare
# against (PennyLane, qiskit-machine-learning). Idempotent; safe to run again.
#
# constraints-cpu.txt pins the CPU build of torch for machines without a GPU (a plain
# `pip install torch` pulls a multi-GB CUDA build); the package's own range is torch>=2.2.
# Set QDT_CONSTRAINTS= (empty) to install without it, e.g. on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="${QDT_CONSTRAINTS-constraints-cpu.txt}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
args=(-q --disable-pip-version-check)
[ -n "$CONSTRAINTS" ] && args+=(-c "$CONSTRAINTS")
.venv/bin/python -m pip install "${args[@]}" --upgrade pip >/dev/null
.venv/bin/python -m pip install "${args[@]}" -e ".[test,peers]"
.venv/bin/python -c "import qdt, torch; print(f'qdt {qdt.__version__} installed with torch {torch.__version__}')"
