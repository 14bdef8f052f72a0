import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``peers`` need the peer stacks (pennylane, qiskit-machine-learning). The
    newest-versions run of .ci/run installs none (QDT_WITHOUT_PEERS=1): there they are skipped,
    naming where they run instead (.venv and .venv-peers)."""
    import os

    import pytest

    if os.environ.get("QDT_WITHOUT_PEERS") != "1":
        return
    skip = pytest.mark.skip(
        reason="the newest-versions run has no peer stacks (pennylane, qiskit-machine-learning): "
        "they run in .venv and .venv-peers (./install.sh [--peers], .ci/run)"
    )
    for item in items:
        if item.get_closest_marker("peers"):
            item.add_marker(skip)
