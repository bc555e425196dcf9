"""The package's layers stay true (issue 20): every import under ``r2mr/`` (module level or inside a function)
points to the same layer or one below it, sibling layers do not import each other, and no modules import each
other in a circle.

Layers, bottom to top: core -> data -> {models, evaluation} -> training -> runs -> report -> cli; the top-level
``r2mr/__init__.py`` (the public API, lazy) and ``r2mr/__main__.py`` may import anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "r2mr"
LAYERS: tuple[tuple[str, ...], ...] = (("core",), ("data",), ("models", "evaluation"), ("training",), ("runs",),
                                       ("report",), ("cli",))
TOP = len(LAYERS)  # r2mr/__init__.py and r2mr/__main__.py


def module_name(path: Path, root: Path) -> str:
    """``r2mr/data/graph.py`` -> ``r2mr.data.graph``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every ``r2mr`` module or package that ``path`` imports, at any depth of the file (lazy imports too)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = {module_name(p, root) for p in root.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = {f"{target}.{a.name}" for a in node.names} & modules  # ``from . import plan``
            found |= subs or {target}
    return {m for m in found if m == root.name or m.startswith(root.name + ".")}


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, sub-package) of ``r2mr.<sub>...``; the package root and ``__main__`` are the top."""
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else ""
    for i, names in enumerate(LAYERS):
        if sub in names:
            return i, sub
    return TOP, sub


def violations(root: Path = PACKAGE) -> list[str]:
    """One line per import that points up a layer or across to a sibling layer."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        src = module_name(path, root)
        (lo, sub) = layer_of(src)
        for dst in sorted(imports_of(path, root)):
            (li, dsub) = layer_of(dst)
            if dst == root.name and src != root.name + ".__main__":
                bad.append(f"{src} imports the package root {dst} (the public API sits on top)")
            elif li > lo or (li == lo and dsub != sub and lo != TOP):
                bad.append(f"{src} ({sub}) imports {dst} ({dsub}): "
                           f"{'upward' if li > lo else 'across sibling layers'}")
    return bad


def cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Import circles between modules (depth-first search over every import, lazy ones included)."""
    graph = {module_name(p, root): imports_of(p, root) for p in root.rglob("*.py")}
    found, state = [], {}  # state: 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_no_upward_or_sideways_import() -> None:
    assert violations() == []


def test_no_import_circle() -> None:
    assert cycles() == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "r2mr"


def test_the_checks_catch_an_upward_import_a_sibling_import_and_a_circle(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "r2mr/__init__.py": "", "r2mr/core/__init__.py": "", "r2mr/models/__init__.py": "",
        "r2mr/evaluation/__init__.py": "", "r2mr/training/__init__.py": "",
        "r2mr/core/paths.py": "def f():\n    from ..training import trainer\n",  # lazy and upward
        "r2mr/models/base.py": "from ..evaluation.evaluator import csr_gather\n",  # sibling
        "r2mr/evaluation/evaluator.py": "from . import rules\n",
        "r2mr/evaluation/rules.py": "from .evaluator import x\n",  # circle evaluator <-> rules
        "r2mr/training/trainer.py": "from ..core import paths\nfrom ..models.base import Recommender\n",  # fine
    })
    assert violations(pkg) == [
        "r2mr.core.paths (core) imports r2mr.training.trainer (training): upward",
        "r2mr.models.base (models) imports r2mr.evaluation.evaluator (evaluation): across sibling layers"]
    assert cycles(pkg) == [["r2mr.core.paths", "r2mr.training.trainer", "r2mr.core.paths"],
                           ["r2mr.evaluation.evaluator", "r2mr.evaluation.rules", "r2mr.evaluation.evaluator"]]


def test_core_and_the_command_line_parser_do_not_import_torch() -> None:
    """The bottom layer is light: config rules, paths and atomic I/O are usable without torch (and --help)."""
    code = ("import sys, pkgutil, importlib, r2mr.core as c\n"
            "[importlib.import_module(m.name) for m in pkgutil.iter_modules(c.__path__, 'r2mr.core.')]\n"
            "import r2mr.cli.main as m; m.build_parser()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_module_is_short() -> None:
    """One job per module: none over 300 lines (split it by job, not by line count)."""
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}
