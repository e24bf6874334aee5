"""The module structure of adabench/: imports run one way (docs/architecture.md).

Every module is parsed with `ast`; the graph holds every import, including those inside
functions, so a cycle cannot hide behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import adabench

PACKAGE_DIR = Path(adabench.__file__).parent

LAYERS = [
    {"cli"},
    {"commands"},
    {"sweep", "report", "convert", "flops_table"},
    {"plots"},
    {"plots_atlas", "plots_style", "plots_load"},
    {"api"},
    {"models", "contention", "analysis"},
    {"data", "measure", "slo", "config", "store"},
    {"registry", "console", "files"},
    {"errors"},
]
"""Subpackages and top-level modules of adabench/, from the top: a module imports only from
layers below its own (docs/architecture.md draws the same picture)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def module_sources() -> dict[str, tuple[ast.Module, bool]]:
    """Module name → (parsed tree, whether it is a package's __init__)."""
    return {
        _module_name(path): (ast.parse(path.read_text(), str(path)), _is_package(path))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


def _owner(name: str, modules: set[str]) -> str | None:
    """The adabench module `name` refers to: itself, or the longest module prefix."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(
    sources: dict[str, tuple[ast.Module, bool]],
) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every adabench import."""
    modules = set(sources)
    found = []
    for module, (tree, is_package) in sources.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _owner(alias.name, modules)
                    if target:
                        found.append((module, target, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        found.append((module, submodule, None, node.lineno))
                    elif (target := _owner(base, modules)) is not None:
                        found.append((module, target, alias.name, node.lineno))
    return found


def _graph(edges: list[tuple[str, str, str | None, int]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, target, _, _ in edges:
        if importer != target:
            graph.setdefault(importer, set()).add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a closed path, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _package_of(module: str) -> str:
    """The subpackage a module belongs to (`adabench.sweep.grid` → `adabench.sweep`);
    top-level modules are their own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_module_graph_is_acyclic_with_function_level_imports():
    cycle = find_cycle(_graph(imports(module_sources())))
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_package_graph_is_acyclic():
    package_graph: dict[str, set[str]] = {}
    for importer, target, _, _ in imports(module_sources()):
        a, b = _package_of(importer), _package_of(target)
        if a != b and b != "adabench":
            package_graph.setdefault(a, set()).add(b)
    cycle = find_cycle(package_graph)
    assert cycle is None, "package cycle: " + " → ".join(cycle)


def _layer(package: str) -> int:
    name = package.removeprefix("adabench.")
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_package_has_a_layer():
    packages = {_package_of(m) for m in module_sources()} - {"adabench"}
    unlisted = {p.removeprefix("adabench.") for p in packages} - set().union(*LAYERS)
    assert unlisted == set()


def test_imports_run_down_the_layers():
    upward = sorted(
        f"{importer}:{line} imports {target}"
        for importer, target, _, line in imports(module_sources())
        if (a := _package_of(importer)) != (b := _package_of(target))
        and b != "adabench"
        and _layer(a) >= _layer(b)
    )
    assert upward == []


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{importer}:{line} imports {name} from {target}"
        for importer, target, name, line in imports(module_sources())
        if name and name.startswith("_") and not name.startswith("__") and importer != target
    ]
    assert private == []


def test_the_cycle_finder_finds_a_function_level_cycle():
    a = ast.parse("import adabench.b\n")
    b = ast.parse("def f():\n    from adabench.a import thing\n")
    sources = {"adabench.a": (a, False), "adabench.b": (b, False)}
    edges = imports(sources)
    assert ("adabench.b", "adabench.a", "thing", 2) in edges
    assert find_cycle(_graph(edges)) in (
        ["adabench.a", "adabench.b", "adabench.a"],
        ["adabench.b", "adabench.a", "adabench.b"],
    )
