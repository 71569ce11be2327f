"""The layering contract (pyproject.toml, [tool.importlinter]) holds, can fail, and no module
imports itself back through others."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")
grimp = pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layering_contract_is_kept():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_it(tmp_path):
    """A data-stage module that imports the service (lazily, inside a function) is caught."""
    copy = tmp_path / "endcloud"
    shutil.copytree(ROOT / "src" / "endcloud", copy, ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    (copy / "data" / "planted.py").write_text("def f():\n    from endcloud.serve import app\n",
                                               encoding="utf-8")
    out = lint(tmp_path, pythonpath=tmp_path)
    assert out.returncode != 0
    assert "endcloud.data.planted -> endcloud.serve.app" in out.stdout, out.stdout + out.stderr


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("endcloud")
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def _strongly_connected(graph) -> list[set[str]]:
    """Tarjan's algorithm over every import grimp sees (module level and inside functions)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return out
