"""docs/extending.md's worked examples (a data set, a model of your own) run as written (issue 20, item 6)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_worked_examples_run(tmp_path: Path) -> None:
    code = "\n".join(blocks(DOC.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("R2MR_")}
    env.update(R2MR_RUNS_DIR=str(tmp_path / "runs"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(DOC.parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "60 80 ['image', 'text']" in out and re.search(r"LightGCN recall@20 0\.\d+ at epoch \d", out)
    assert re.search(r"Dot recall@20 0\.\d+ config dim 8", out)
    assert "config key 'dim': 0 is not allowed (allowed: an integer >= 1)" in out
    table = out[out.index("model"):].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["BPR", "dot"], table  # one row each, (n=2) seeds
    assert all("(n=2)" in line for line in table[1:]), table
    assert (tmp_path / "runs" / "mini").is_dir() and not (tmp_path / "my_data" / "mini" / "cache").exists()
