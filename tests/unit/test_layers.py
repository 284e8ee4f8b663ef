"""One-way layers: the domain imports no framework, providers never import services or web code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "gateway" / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_is_pure(path: Path) -> None:
    bad = {
        n
        for n in _imports(path)
        if n.split(".")[0] in {"flask", "sqlalchemy", "requests", "providers", "callbacks"}
        or n.startswith(("gateway.services", "gateway.api", "gateway.web", "gateway.storage"))
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "providers").glob("*.py")), ids=lambda p: p.name)
def test_provider_adapters_do_not_reach_into_the_app(path: Path) -> None:
    bad = {
        n
        for n in _imports(path)
        if n.startswith(("gateway.services", "gateway.api", "gateway.web", "gateway.storage", "callbacks"))
        or n.split(".")[0] in {"flask", "sqlalchemy"}
    }
    assert not bad, f"{path.name} imports {bad}"
