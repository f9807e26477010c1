"""The package's layout: the domain (glueperf/*.py) never imports the run infrastructure
(glueperf/infra/), and no modules import each other in a circle. Imports at any depth count:
one inside a function is as much a dependency as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "scripts" / "glueperf"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str) -> set[str]:
    """The package's modules that module ``name`` imports (``from glueperf import x`` is the
    module x where there is one, else the package)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and not name.startswith(candidate + "."):
                found.add(candidate)
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def is_infra(name: str) -> bool:
    return name == "glueperf.infra" or name.startswith("glueperf.infra.")


def test_the_domain_never_imports_the_run_infrastructure():
    offending = {
        name: sorted(filter(is_infra, imports))
        for name, imports in GRAPH.items()
        if not is_infra(name) and any(map(is_infra, imports))
    }
    assert offending == {}


def test_no_modules_import_each_other_in_a_circle():
    circles, done = [], set()

    def visit(name: str, path: list[str]) -> None:
        for imported in sorted(GRAPH[name]):
            if imported in path:
                circles.append(path[path.index(imported) :] + [imported])
            elif imported not in done:
                visit(imported, [*path, imported])
        done.add(name)

    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    assert circles == []


def test_the_walk_sees_imports_inside_functions():
    """The checks above would pass vacuously if the walk missed imports: the fork server imports
    the script frame inside a function, and the job bodies their devices the same way."""
    assert "glueperf.infra.script" in GRAPH["glueperf.infra.forkserver"]
    assert "glueperf.infra.devices" in GRAPH["glueperf.infra.evaluate_job"]
    assert "glueperf.evaluation" in GRAPH["glueperf.infra.evaluate_job"]
