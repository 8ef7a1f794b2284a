"""The import graph of the whole tree (contract, service, training, scripts, bench), read from the source:
no cycle between modules, and no import against the layers. The contract is the ground floor and imports
neither half; the service never imports training or torch; training never imports the service.

Every import statement counts, inside functions too (a deferred import still ties the modules together);
only those under ``if TYPE_CHECKING:`` do not, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import REPO

PACKAGES = ("contract", "service", "training", "scripts", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((REPO / package).rglob("*.py"))
    if ".venv" not in path.parts
}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported(module: str, path: Path) -> set[str]:
    """The names ``module`` imports: a module of the tree where one is meant, else the top-level package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c` imports the module a.b.c when there is one, else a name of a.b.
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return found


IMPORTS = {module: _imported(module, path) for module, path in MODULES.items()}
EDGES = {module: {name for name in names if name in MODULES and name != module} for module, names in IMPORTS.items()}


def _cycles(edges: dict[str, set[str]] = EDGES) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(edges[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def _against(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """``module -> imported`` for each import of a module of ``layer`` whose top-level name is forbidden."""
    return sorted(
        f"{module} -> {name}"
        for module, names in IMPORTS.items()
        if module.split(".")[0] == layer
        for name in names
        if name.split(".")[0] in forbidden
    )


def test_the_graph_reads_the_whole_tree() -> None:
    """The checks below are only as good as the graph: it holds every package's modules and their imports."""
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "contract.manifest" in EDGES["contract.calibration"]
    assert "contract.manifest" in EDGES["service.registry"]
    assert "service.errors" in EDGES["service.runtime"]
    assert "onnxruntime" in IMPORTS["service.runtime"]


def test_no_module_of_the_tree_is_in_an_import_cycle() -> None:
    assert _cycles() == []


def test_no_package_of_the_tree_is_in_an_import_cycle() -> None:
    """Package by package too (training.evaluate, training.judge, service.routes, ... each one node): the
    evaluation once imported the calibration, which imported evaluation modules back."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    grouped: dict[str, set[str]] = {}
    for module, targets in EDGES.items():
        grouped.setdefault(package(module), set()).update(package(t) for t in targets if package(t) != package(module))
    assert _cycles(grouped) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("contract", ("service", "training", "scripts", "bench", "torch", "onnxruntime", "fastapi", "PIL")),
        ("service", ("training", "torch", "scripts", "bench")),
        ("training", ("service", "scripts", "bench")),
    ],
)
def test_no_import_against_the_layers(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _against(layer, forbidden) == []
