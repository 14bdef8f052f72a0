"""Docs point only at files in the repository: every repository path or Markdown page named in the
package's docstrings and comments, README.md, CONTRIBUTING.md and docs/ exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("qdt", "docs", "benchmarks", "backends", "noise_models", "tests", "examples")
# A path that starts at one of the repository's top folders (not inside another path such as
# $XDG_STATE_HOME/qdt/jobs), or a bare Markdown page name such as DESIGN.md.
PATH = re.compile(r"(?<![\w/$.-])(?:(?:" + "|".join(TOP_FOLDERS) + r")/[\w./-]*[\w/]|[A-Z][A-Za-z_]+\.md)\b")


def documented_paths() -> dict[str, list[str]]:
    """Path named → the files that name it."""
    sources = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources += sorted((ROOT / "qdt").rglob("*.py"))
    found: dict[str, list[str]] = {}
    for source in sources:
        for match in PATH.finditer(source.read_text(encoding="utf-8")):
            found.setdefault(match.group(0).rstrip("."), []).append(str(source.relative_to(ROOT)))
    return found


def test_named_paths_exist() -> None:
    paths = documented_paths()
    assert "qdt/problem/generator.py" in paths  # the scan sees what README names
    missing = {path: sorted(set(where)) for path, where in paths.items() if not (ROOT / path).exists()}
    assert not missing, f"paths named in docs that are not in the repository: {missing}"
