"""Packaging: pyproject.toml is the one list of dependencies, environment.yml agrees with it, every third-party
import under r2mr/ is declared, no core dependency is unused, and no file names a package index."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
IMPORT_TO_DIST = {"yaml": "pyyaml", "sklearn": "scikit-learn"}  # import name -> distribution, where they differ
# Core dependencies used without an import statement: the pattern must occur in r2mr/'s source.
INDIRECT = {"tabulate": r"\.to_markdown\("}  # pandas' Markdown tables need tabulate
# Declared for code arriving from another branch; the test below fails once the import lands, so the entry is
# removed at the merge and the strict check takes over.
PENDING: dict[str, str] = {}  # core dependencies declared ahead of the code that imports them


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs}


def core() -> dict[str, Requirement]:
    return requirements(pyproject()["project"]["dependencies"])


def extras() -> dict[str, dict[str, Requirement]]:
    return {k: requirements(v) for k, v in pyproject()["project"]["optional-dependencies"].items()}


def environment() -> tuple[str, list[str], list[str]]:
    """(python version, conda requirements, pip entries) of environment.yml."""
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [e for d in deps if isinstance(d, dict) for e in d.get("pip", [])]
    python = next(d.split("=", 1)[1] for d in conda if re.match(r"python\s*=", d))
    return python, [d for d in conda if not re.match(r"(python|pip)\b", d)], pip


def third_party_imports(module_level_only: bool = False) -> dict[str, set[str]]:
    """Distribution name -> files under r2mr/ importing it (``module_level_only``: at the top of the module)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "r2mr").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("__future__", "r2mr"):
                    continue
                dist = canonicalize_name(IMPORT_TO_DIST.get(top, top))
                found.setdefault(dist, set()).add(str(path.relative_to(ROOT)))
    return found


def test_environment_yml_agrees_with_pyproject() -> None:
    python, conda, pip = environment()
    requires = pyproject()["project"]["requires-python"]
    assert Version(python) in Requirement(f"python{requires}").specifier, (python, requires)
    declared = {**core(), **{k: v for reqs in extras().values() for k, v in reqs.items()}}
    installs = [e for e in pip if e.startswith("-e")]
    assert installs, "environment.yml must install the package itself (pip: -e .[extras])"
    for entry in installs:
        wanted = re.search(r"\[([^\]]*)\]", entry)
        assert wanted and set(wanted.group(1).split(",")) <= set(extras()), entry
    for line in conda + [e for e in pip if not e.startswith("-")]:
        req = Requirement(line.replace("=", "==") if re.fullmatch(r"[\w.-]+=[^=<>]+", line) else line)
        name = canonicalize_name(req.name)
        assert name in declared, f"environment.yml pins {name}, which pyproject.toml does not declare"
        assert req.specifier == declared[name].specifier, f"{name}: {req.specifier} != {declared[name].specifier}"


def test_torch_is_pinned_once() -> None:
    assert str(core()["torch"].specifier) == "==2.13.0"
    pins = re.compile(r"torch\s*[=<>~!]=\s*\d")
    for path in [*ROOT.glob("*.sh"), *ROOT.glob("scripts/*"), *ROOT.glob(".ci/*"), *ROOT.glob("benchmarks/*.sh"),
                 ROOT / "README.md"]:
        assert not pins.search(path.read_text()), f"{path.name} pins torch itself; the pin lives in pyproject.toml"


def test_every_import_is_declared() -> None:
    declared_core = set(core())
    declared_any = declared_core | {k for reqs in extras().values() for k in reqs}
    undeclared = {d: f for d, f in third_party_imports().items() if d not in declared_any}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    top_level = {d: f for d, f in third_party_imports(module_level_only=True).items() if d not in declared_core}
    assert not top_level, f"imported at module level but only an extra (import it inside the function): {top_level}"


def test_no_unused_core_dependency() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "r2mr").rglob("*.py"))
    imported = set(third_party_imports())
    used_indirectly = {d for d, pattern in INDIRECT.items() if re.search(pattern, source)}
    unused = set(core()) - imported - used_indirectly - set(PENDING)
    assert not unused, f"declared in pyproject.toml but never used under r2mr/: {sorted(unused)}"
    landed = set(PENDING) & imported
    assert not landed, f"{sorted(landed)} is imported now: remove it from PENDING in this test"


def test_extras() -> None:
    ex = extras()
    assert {"test", "notebooks", "ray", "dev"} <= set(ex)
    assert {"pytest", "nbval", "papermill", "nbformat", "nbclient", "ipykernel", "ray"} <= set(ex["test"])
    assert {"papermill", "jupyter", "ipykernel", "nbformat", "nbclient"} <= set(ex["notebooks"])
    assert "ruff" in ex["dev"] and "r2mr" in ex["dev"] and ex["dev"]["r2mr"].extras == {"test"}
    assert not {"pytest", "nbval", "papermill", "jupyter", "seaborn"} & set(core()), "test/notebook tools in core"
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "r2mr.core.__version__"}


def test_package_data_exists() -> None:
    for pkg, patterns in pyproject()["tool"]["setuptools"].get("package-data", {}).items():
        for pattern in patterns:
            assert list((ROOT / pkg).glob(pattern)), f"package-data {pkg}/{pattern} matches no file"


def text_files() -> list[Path]:
    skip = {".git", ".venv", "runs", "data", "scratch", "__pycache__", "figures"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
            and p.suffix not in (".png", ".pdf", ".npy", ".pt", ".pyc")]


def test_no_package_index_named() -> None:
    # the same pattern as `git grep -iE` in the README's check, spelled so that this file does not match it
    pattern = re.compile(r"pypi\.org|python" r"hosted|download\.pytorch|index[-]url", re.IGNORECASE)
    hits = [str(p.relative_to(ROOT)) for p in text_files() if pattern.search(p.read_text(errors="replace"))]
    assert not hits, f"a package-index host or option is named in: {hits}"


def test_setup_script_installs_through_pip_as_configured() -> None:
    script = (ROOT / "scripts" / "ensure_env.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "socket" not in code and "http" not in code, "no probes and no URLs in the set-up script"
    assert re.search(r'pip install -q -e "\.\[\$EXTRAS_ALL\]"', code) and "R2MR_EXTRAS" in code
    assert 'R2MR_EXTRAS="${R2MR_EXTRAS:-test}"' in (ROOT / "run_tests.sh").read_text()
