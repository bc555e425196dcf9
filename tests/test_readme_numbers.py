"""Every result number in the README's and docs/results.md's results tables appears in the committed results
table(s) that row cites.

The tables are the Markdown tables (README: under "## Reproduction status"; docs/results.md: under
"## Results") whose header has a ``table`` column; that column names
one or more files under ``results/`` (in backticks). A result number is a decimal with at least three digits
after the point (metric values such as 0.0586); relative differences (Δ, in %) are derived from them and not
checked. A number passes if it is written in a cited file's text (CSV or Markdown) with the same digits.
"""

from __future__ import annotations

import re

import pytest

from r2mr.core.paths import REPO_ROOT

NUMBER = re.compile(r"(?<![\d.])\d+\.\d{3,}(?![\d])")
CITED = re.compile(r"`(results/[^`]+)`")


PAGES = {"README.md": "## Reproduction status", "docs/results.md": "## Results",  # page -> its section
         "results/archive/1b986e0-quick-capped/README.md": "## Results"}


def results_table(readme: str, heading: str = "## Results") -> list[dict[str, str]]:
    """Rows of the results tables under ``heading`` (every table with a ``table`` column) as {column: cell}."""
    section = readme.split("\n" + heading, 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    rows: list[dict[str, str]] = []
    i = 0
    while i < len(lines):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if lines[i].startswith("|") and "table" in cells:
            header, i = cells, i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, [c.strip() for c in lines[i].strip().strip("|").split("|")])))
                i += 1
        i += 1
    return rows


def test_parser_reads_numbers_and_citations() -> None:
    text = "x\n## Results\n\n| model | ours | table |\n|---|---|---|\n| BPR | 0.0586 / 1.9 (+1.9%) | `results/a.md` |\n"
    rows = results_table(text)
    assert rows == [{"model": "BPR", "ours": "0.0586 / 1.9 (+1.9%)", "table": "`results/a.md`"}]
    assert NUMBER.findall(rows[0]["ours"]) == ["0.0586"] and CITED.findall(rows[0]["table"]) == ["results/a.md"]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_result_number_is_in_the_tables_it_cites(page: str) -> None:
    rows = results_table((REPO_ROOT / page).read_text(), PAGES[page])
    assert rows, f"{page}: no results table with a 'table' column under '{PAGES[page]}'"
    missing = []
    for row in rows:
        files = CITED.findall(row["table"])
        assert files, f"{page} results row {row} cites no file under results/"
        texts = []
        for f in files:
            path = REPO_ROOT / f
            assert path.is_file(), f"{page} cites {f}, which is not committed"
            texts.append(path.read_text())
        for col, cell in row.items():
            if col == "table":
                continue
            missing += [(row.get("model"), n, files) for n in NUMBER.findall(cell)
                        if not any(re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", t) for t in texts)]
    assert not missing, f"{page}: numbers not in the tables they cite: {missing}"


PROSE = {"README.md": "## Reproduction status", "docs/results.md": None,  # page -> its section (None: all of it)
         "results/archive/1b986e0-quick-capped/README.md": None}


def prose(page_text: str, heading: str | None) -> str:
    """The lines under ``heading`` (up to the next ``## ``; the whole page if None) that are not table rows."""
    section = page_text if heading is None else page_text.split("\n" + heading, 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if not line.startswith("|"))


def committed_results_text() -> str:
    """Every committed results table's text (CSV and Markdown under results/, the archived runs' tables too)."""
    return "\n".join(p.read_text(errors="ignore") for p in sorted((REPO_ROOT / "results").rglob("*"))
                     if p.suffix in (".csv", ".md") and p.is_file())


def test_prose_finds_a_number_missing_from_the_tables() -> None:
    text = "x\n## Results\n\nR2MR reads 0.0757 and MGCN 0.1037.\n| 0.9999 | `results/a.md` |\n## Next\n0.5555"
    found = [n for n in NUMBER.findall(prose(text, "## Results")) if n not in "... 0.0757 ..."]
    assert found == ["0.1037"]


@pytest.mark.parametrize("page", sorted(PROSE))
def test_every_result_number_in_the_prose_is_in_a_committed_table(page: str) -> None:
    """The paragraphs around the tables state results too (e.g. "0.0823 ± 0.0018"): each decimal with three or more
    digits after the point is written, with the same digits, in some committed results table."""
    tables = committed_results_text()
    numbers = NUMBER.findall(prose((REPO_ROOT / page).read_text(), PROSE[page]))
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}", tables)]
    assert numbers and not missing, f"{page}: numbers in the prose that no committed table holds: {missing}"
