"""The documentation names only what exists: every command and flag it shows (checked against that command's
``--help``), every relative link, and every repository path it writes in backticks.

Pages: README.md, CHANGELOG.md, notebooks/README.md and docs/*.md. Commands are read from inline code and
fenced code blocks: ``python -m r2mr [sub [subsub]] --flag ...``, ``bash run_all.sh --flag ...`` and
``python scripts/X.py`` / ``python benchmarks/X.py``; a code span that is a bare flag (```--jobs N```) must be
a flag of ``python -m r2mr`` or ``run_all.sh``. Other tools (pip, pytest, ray, papermill) are not checked.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from r2mr.core.paths import REPO_ROOT

PAGES = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", REPO_ROOT / "notebooks" / "README.md",
                *(REPO_ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
REPO_PATH = re.compile(r"^(?:r2mr|notebooks|results|figures|configs|scripts|tests|benchmarks|docs)/[\w./-]*$")


def rel(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


def code_snippets(text: str) -> list[str]:
    """Every fenced code line (backslash continuations joined) and every inline code span, ``\\|`` unescaped."""
    out: list[str] = []
    for block in FENCE.findall(text):
        out += block.replace("\\\n", " ").splitlines()
    prose = FENCE.sub("", text)
    out += INLINE.findall(prose)
    return [s.replace("\\|", "|") for s in out]


def commands(snippet: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(command, flags) for each r2mr command in a snippet; a command is ("r2mr", sub...), ("run_all.sh",)
    or ("script", path). Segments are cut at ' | ', ';', '&&' and ' # '."""
    found = []
    if snippet.lstrip().startswith("error:"):  # a quoted error message, not a command
        return []
    for seg in re.split(r" \| |;|&&| # ", snippet):
        words = seg.split()
        for i, w in enumerate(words):
            rest = words[i + 1:]
            if w == "-m" and rest[:1] == ["r2mr"]:
                cmd, j = ["r2mr"], i + 2
                while j < len(words) and words[j] in subcommands(tuple(cmd)):
                    cmd.append(words[j])
                    j += 1
                found.append((tuple(cmd), FLAG.findall(" ".join(words[j:]))))
            elif w.endswith("run_all.sh"):
                found.append((("run_all.sh",), FLAG.findall(" ".join(rest))))
            elif re.fullmatch(r"(scripts|benchmarks)/\w+\.py", w) and i > 0 and words[i - 1].startswith("python"):
                found.append((("script", w), FLAG.findall(" ".join(rest))))
    return found


@functools.lru_cache(maxsize=None)
def help_text(cmd: tuple[str, ...]) -> str:
    """The ``--help`` output of a command (failing the test if the command does not exist)."""
    if cmd[0] == "r2mr":
        argv = [sys.executable, "-m", "r2mr", *cmd[1:], "--help"]
    elif cmd[0] == "run_all.sh":
        argv = ["bash", str(REPO_ROOT / "run_all.sh"), "--help"]
    else:
        argv = [sys.executable, str(REPO_ROOT / cmd[1]), "--help"]
    res = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert res.returncode == 0, f"`{' '.join(cmd)} --help` failed: {res.stderr.strip()[-300:]}"
    return res.stdout


@functools.lru_cache(maxsize=None)
def subcommands(cmd: tuple[str, ...]) -> tuple[str, ...]:
    """The subcommands a command's ``--help`` usage line lists (``{train,data,...} ...``), or none."""
    found = re.search(r"\{([\w,-]+)\} \.\.\.", help_text(cmd))
    return tuple(found.group(1).split(",")) if found else ()


def all_flags() -> set[str]:
    text = "".join(help_text(c) for c in [("r2mr",), ("r2mr", "train"), ("r2mr", "plan"), ("r2mr", "run-all"),
                                          ("r2mr", "data", "check"), ("r2mr", "data", "synth"),
                                          ("r2mr", "data", "download"), ("r2mr", "data", "convert"),
                                          ("run_all.sh",)])
    return set(FLAG.findall(text))


def test_snippet_parser_finds_commands_and_flags() -> None:
    got = commands("python -m r2mr data synth --out DIR [--seed N] | bash run_all.sh --ray local # --nope")
    assert got == [(("r2mr", "data", "synth"), ["--out", "--seed"]), (("run_all.sh",), ["--ray"])]
    assert code_snippets("a `--jobs N` b\n```bash\npython -m r2mr train \\\n  --model x\n```\n") == [
        "python -m r2mr train    --model x", "--jobs N"]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_commands_and_flags_exist(page: Path) -> None:
    bad = []
    known = None
    for snippet in code_snippets(page.read_text()):
        for cmd, flags in commands(snippet):
            text = help_text(cmd)
            bad += [f"{' '.join(cmd)} {f}" for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
        if snippet.startswith("--") and not commands(snippet):
            known = known if known is not None else all_flags()
            flag = FLAG.match(snippet)
            if flag and flag.group(1) not in known:
                bad.append(snippet)
    assert not bad, f"{rel(page)} names commands or flags that --help does not list: {bad}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_and_paths_resolve(page: Path) -> None:
    text = page.read_text()
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#", 1)[0]).exists():
            bad.append(f"link {target}")
    for span in INLINE.findall(FENCE.sub("", text)):
        if REPO_PATH.match(span) and not (REPO_ROOT / span.rstrip("/")).exists():
            bad.append(f"path {span}")
    assert not bad, f"{rel(page)}: {bad}"


def test_readme_is_the_front_door() -> None:
    """README: at most ~150 lines, the reproduction status right after the title, the converged evidence named
    as such and the capped plan labelled a tutorial, not evidence."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 155, f"README.md has {len(lines)} lines"
    headings = [ln for ln in lines if ln.startswith("## ")]
    assert headings[0] == "## Reproduction status", headings[:2]
    text = "\n".join(lines)
    assert "**Converged evidence" in text and "capped tutorial, not evidence" in text


def test_version_citation_and_changelog_agree() -> None:
    """One version: r2mr.__version__, CITATION.cff's version and the newest CHANGELOG entry; the citation names
    the paper's eight authors, as the README's BibTeX does."""
    import yaml

    from r2mr import __version__

    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    newest = re.search(r"^## (\S+)", (REPO_ROOT / "CHANGELOG.md").read_text(), re.M)
    assert cff["version"] == __version__ and newest and newest.group(1) == __version__
    paper = cff["preferred-citation"]
    assert paper["doi"] == "10.1145/3690624.3709250" and (paper["start"], paper["end"]) == (1337, 1348)
    families = [a["family-names"] for a in paper["authors"]]
    assert len(families) == 8
    bibtex = (REPO_ROOT / "README.md").read_text().split("@inproceedings", 1)[1].split("\n}", 1)[0]
    assert all(f in bibtex for f in families) and "others" not in bibtex


def test_constraints_pin_every_package_the_results_depend_on() -> None:
    """constraints.txt pins an exact version of each library a run record names, and ensure_env.sh uses it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pins = {name.lower().replace("_", "-"): version for name, version in (
        ln.split("==", 1) for ln in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in ln and not ln.startswith("#"))}
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    for name in ("torch", "numpy", "scipy", "scikit-learn", "pandas", *declared):  # every runtime dependency
        assert re.fullmatch(r"\d+(\.\d+)+", pins.get(name, "")), f"constraints.txt: no exact pin for {name}"
    assert "-c constraints.txt" in (REPO_ROOT / "scripts" / "ensure_env.sh").read_text()
