"""The layers meet only where the architecture says: front ends call `Service`'s public methods.

Read from the syntax trees, so a front end that reaches past the façade (a `service.store`, a
`Pipeline(store, indexes, ...)`) fails here before review has to catch it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from support.paths import ROOT

from rag.service import Service

FRONT_ENDS = sorted([*(ROOT / "api").glob("*.py"), ROOT / "ingest" / "cli.py", ROOT / "ingest" / "queue.py"])
FORBIDDEN_IMPORTS = ("rag.store", "rag.schema", "rag.indexes", "rag.retrieval", "rag.migrations", "rag.workers")
"""What `api/` and `ingest/cli.py` may not import: the parts behind the façade."""

PUBLIC = {name for name, _ in inspect.getmembers(Service) if not name.startswith("_")} | {"settings"}


def _is_service_annotation(node: ast.expr | None) -> bool:
    return node is not None and "Service" in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _service_names(tree: ast.AST) -> set[str]:
    """Names that hold a Service: annotated parameters and variables, `x = Service(...)`, `x = _service()`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and _is_service_annotation(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and _is_service_annotation(node.annotation):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("Service", "_service"):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, attribute) of every attribute read on a Service-holding name or `self.service`."""
    names = _service_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        holder = node.value
        if isinstance(holder, ast.Name) and holder.id in names:
            found.append((node.lineno, node.attr))
        elif isinstance(holder, ast.Attribute) and holder.attr == "service" \
                and isinstance(holder.value, ast.Name) and holder.value.id == "self":
            found.append((node.lineno, node.attr))
    return found


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_front_ends_use_only_the_public_methods_of_service(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"{path.name}:{line} .{attr}" for line, attr in _uses(tree) if attr not in PUBLIC]
    assert bad == [], f"reaches past the Service façade: {bad}"
    private = [f"{path.name}:{n.lineno} .{n.attr}" for n in ast.walk(tree)
               if isinstance(n, ast.Attribute)
               and n.attr in ("_store", "_dense", "_lexical", "_workers", "_retriever", "_asker")]
    assert private == [], f"reaches into Service's private parts: {private}"


@pytest.mark.parametrize("path", [p for p in FRONT_ENDS if p.name != "queue.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_front_ends_import_nothing_behind_the_facade(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = [(n.lineno, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [(n.lineno, a.name) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    bad = [f"{path.name}:{line} {mod}" for line, mod in imported
           if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN_IMPORTS)]
    assert bad == []


def test_the_checker_sees_a_reach_past_the_facade() -> None:
    """The walk above must catch the patterns it exists for (else it passes vacuously)."""
    source = (
        "def handler(service: NamedDependency[Service]):\n"
        "    service.store.get_collection('x')\n"
        "def cli():\n"
        "    service = _service()\n"
        "    service.retriever.search('c', 'q')\n"
        "    service.search('c', 'q')\n"
        "class Q:\n"
        "    def run(self):\n"
        "        self.service.indexes.save(1)\n"
    )
    uses = _uses(ast.parse(source))
    assert [attr for _, attr in uses if attr not in PUBLIC] == ["store", "retriever", "indexes"]
    assert "search" in PUBLIC and "store" not in PUBLIC


def test_service_has_no_public_store_index_or_retriever() -> None:
    assert not PUBLIC & {"store", "indexes", "index", "retriever", "asker", "engine"}
