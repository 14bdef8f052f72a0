import os
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module", autouse=True)
def _restore_ray_authentication_settings():
    """Ray (2.60) sets ``RAY_AUTH_MODE`` in the environment when a test starts a cluster itself
    (``ray.init``) and leaves it set, which would make every later Ray session in this process look
    configured by the user; each test module leaves Ray's authentication settings as it found them
    (set up before the module's own fixtures, restored after them)."""
    from qdt.experiments.sweep.engine import RAY_SESSION_VARIABLES

    before = {key: os.environ.get(key) for key in RAY_SESSION_VARIABLES}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
