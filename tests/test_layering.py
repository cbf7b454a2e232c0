"""Imports point one way: benchmarks use the product, energy stays below checkpoints, the server
below the exporters, the load generator beside the server.

Checked from the source (ast, nothing imported), following imports through every first-party
module, so a lazy import inside a function or a detour through a third module counts too.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS, main

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("profiler", "exporters", "benchmarks")

#: (modules under this name, must not reach modules under this name).
FORBIDDEN = [
    ("profiler", "benchmarks"),
    ("exporters", "benchmarks"),
    ("profiler.energy", "profiler.checkpoints"),
    ("profiler.server", "exporters"),
    ("profiler.loadgen", "profiler.server"),
]


def first_party_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Every dotted name ``name`` imports, anywhere in the file; ``from a import b`` gives ``a`` and ``a.b``
    (``b`` may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the package this module is in
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                module = ".".join([*package[: len(package) - node.level + 1], *filter(None, [module])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules importing it runs (parent packages included)."""
    modules = first_party_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for imported in imported_names(name, path):
            parts = imported.split(".")
            prefixes = {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
            graph[name] |= {prefix for prefix in prefixes if prefix in modules and prefix != name}
    return graph


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def chain_to(graph: dict[str, set[str]], start: str, package: str) -> list[str] | None:
    """Shortest import chain from ``start`` to a module under ``package``, or None."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for imported in sorted(graph[current]):
            if imported in came_from or imported == start:
                continue
            came_from[imported] = current
            if under(imported, package):
                chain = [imported]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            queue.append(imported)
    return None


GRAPH = import_graph()


def test_the_graph_sees_known_imports() -> None:
    """Guards the checks below against passing because the parser found nothing."""
    assert "exporters.export" in GRAPH["profiler.cli"]
    assert "profiler.checkpoints" in GRAPH["benchmarks.energy"]
    assert "profiler.energy.meter" in GRAPH["profiler.energy"]  # a package __init__


@pytest.mark.parametrize(("source", "target"), FORBIDDEN)
def test_imports_point_one_way(source: str, target: str) -> None:
    chains = [
        " -> ".join(chain)
        for module in sorted(GRAPH)
        if under(module, source) and (chain := chain_to(GRAPH, module, target))
    ]
    assert not chains, f"{source} must not import {target}:\n" + "\n".join(chains)


def test_every_benchmark_runs_through_one_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks`` lists each module of the package, and each has the ``main()`` it calls."""
    modules = {name.removeprefix("benchmarks.") for name in GRAPH if name.startswith("benchmarks.")}
    assert modules - {"__main__"} == set(BENCHMARKS)
    for name in BENCHMARKS:
        tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text(encoding="utf-8"))
        assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body), name
    assert main([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in BENCHMARKS)
    assert main(["no-such-benchmark"]) == 2
