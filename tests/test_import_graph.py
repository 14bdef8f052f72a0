"""Imports point one way: no cycle between files or folders of ``qdt/``, and no layer imports a later one.

Every import counts: at module level, inside functions, and a module named by a string (what
``importlib.import_module`` loads); only ``if TYPE_CHECKING:`` blocks are left out, since they never
run. A module name computed at run time (an f-string starting with ``qdt.``) is refused outright,
because no reader, human or test, can follow it.

The layers, lowest first (a module may import its own layer and the ones before it)::

    qdt/*.py (errors, files, plots, stats) → problem → circuits → noise → sim → executors → rl
    → experiments → cli
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = "qdt"
ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("", "problem", "circuits", "noise", "sim", "executors", "rl", "experiments", "cli")


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name refers to (``qdt.a.b.Name`` → ``qdt.a.b``), or None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def imported_names(module: str, path: Path, root: Path = ROOT) -> tuple[set[str], list[str]]:
    """Dotted names this module imports (any depth, by statement or by string), and computed names found."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    computed: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text.startswith(PACKAGE + ".") and text.replace(".", "").replace("_", "").isalnum():
                names.add(text)
        elif isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and str(head.value).startswith(PACKAGE + "."):
                if any(isinstance(part, ast.FormattedValue) for part in node.values):
                    computed.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}, computed


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """Module → modules of the package it imports; and every computed module name."""
    modules = package_modules(root)
    edges: dict[str, set[str]] = defaultdict(set)
    computed: list[str] = []
    for module, path in modules.items():
        names, found = imported_names(module, path, root)
        computed += found
        is_package = path.name == "__init__.py"
        for name in names:
            target = _resolve(name, modules)
            # A package's __init__ re-exporting its own submodules is not a dependency on them.
            if target and target != module and not (is_package and target.startswith(module + ".")):
                edges[module].add(target)
    for module in modules:
        edges.setdefault(module, set())
    return edges, computed


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one node (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def folder_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def folder_graph(edges: dict[str, set[str]], modules: dict[str, Path]) -> dict[str, set[str]]:
    """Folder → folders it imports; a folder and its own subfolders are one house, not two."""
    folders: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        a = folder_of(source, modules)
        folders.setdefault(a, set())
        for target in targets:
            b = folder_of(target, modules)
            related = a == b or a.startswith(b + ".") or b.startswith(a + ".")
            if not related and PACKAGE not in (a, b):
                folders[a].add(b)
    return folders


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] not in LAYERS):
        return 0  # qdt/__init__.py and the top-level modules (errors, files, plots, stats)
    return LAYERS.index(parts[1])


def describe(cycles: list[list[str]]) -> str:
    return "; ".join(" <-> ".join(cycle) for cycle in cycles)


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, set[str]], list[str]]:
    return import_graph()


def test_every_subpackage_is_a_known_layer() -> None:
    unknown = sorted({m.split(".")[1] for m in package_modules() if m.count(".") >= 1} - set(LAYERS))
    unknown = [name for name in unknown if (ROOT / PACKAGE / name).is_dir()]
    assert not unknown, f"folders not in the layer list {LAYERS}: {unknown}; add them to LAYERS in order"


def test_no_import_cycle_between_files(graph) -> None:
    edges, _ = graph
    cycles = strongly_connected(edges)
    assert not cycles, f"file import cycles: {describe(cycles)}"


def test_no_import_cycle_between_folders(graph) -> None:
    edges, _ = graph
    cycles = strongly_connected(folder_graph(edges, package_modules()))
    assert not cycles, f"folder import cycles: {describe(cycles)}"


def test_layers_import_only_downwards(graph) -> None:
    edges, _ = graph
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in edges.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )
    assert not upward, "imports that point up the layers " + " → ".join(LAYERS[1:]) + ": " + "; ".join(upward)


def test_no_module_is_imported_by_a_computed_name(graph) -> None:
    _, computed = graph
    assert not computed, f"modules loaded by computed names (list them statically): {computed}"


def test_the_checker_sees_cycles_in_functions_and_by_name(tmp_path: Path) -> None:
    """The checker itself: a cycle hidden in a function, or closed by importlib with a string, is found."""
    package = tmp_path / PACKAGE
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    for folder in (package, package / "low", package / "high"):
        (folder / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("def f():\n    from qdt.high import b\n")
    (package / "high" / "b.py").write_text("import importlib\nM = importlib.import_module('qdt.low.a')\n")
    (package / "high" / "c.py").write_text("def g(n):\n    return f'qdt.low.{n}'\n")
    edges, computed = import_graph(tmp_path)
    assert "qdt.high.b" in edges["qdt.low.a"] and edges["qdt.high.b"] == {"qdt.low.a"}
    assert strongly_connected(edges) == [["qdt.high.b", "qdt.low.a"]]
    assert strongly_connected(folder_graph(edges, package_modules(tmp_path))) == [["qdt.high", "qdt.low"]]
    assert len(computed) == 1 and "qdt.low." in computed[0]
