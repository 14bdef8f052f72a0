#!/usr/bin/env bash
# Set up qdt for development and tests. Idempotent; safe to run again.
#
#   ./install.sh           .venv: qdt (editable) with its test tools and the peers that coexist
#                          with the newest qiskit stack (PennyLane, qiskit-machine-learning),
#                          pinned by constraints-cpu.txt: the set CI tests first.
#   ./install.sh --peers   .venv-peers: the same plus pennylane-qiskit, which caps qiskit at 2.3;
#                          pinned by constraints-peers.txt. Tests marked `peers` run there too.
#
# Both pin the CPU build of torch (constraints-torch-cpu.txt); a plain `pip install torch` pulls a
# multi-GB CUDA build. QDT_CONSTRAINTS=FILE installs with another constraints file, and
# QDT_CONSTRAINTS= (empty) with the package's own open ranges, e.g. on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv
EXTRAS="test,peers"
DEFAULT_CONSTRAINTS=constraints-cpu.txt
case "${1:-}" in
  "") ;;
  --peers) VENV=.venv-peers; EXTRAS="test,peers,pennylane-qiskit"; DEFAULT_CONSTRAINTS=constraints-peers.txt ;;
  *) echo "usage: ./install.sh [--peers]" >&2; exit 2 ;;
esac
CONSTRAINTS="${QDT_CONSTRAINTS-$DEFAULT_CONSTRAINTS}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
args=(-q --disable-pip-version-check)
[ -n "$CONSTRAINTS" ] && args+=(-c "$CONSTRAINTS")
"$VENV/bin/python" -m pip install "${args[@]}" --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install "${args[@]}" -e ".[$EXTRAS]"
"$VENV/bin/python" -c "import qdt, qiskit, qiskit_ibm_runtime as r, torch; print(f'qdt {qdt.__version__} \
installed in $VENV with qiskit {qiskit.__version__}, qiskit-ibm-runtime {r.__version__}, torch {torch.__version__}')"
