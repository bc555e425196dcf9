"""Re-execute the committed notebooks with their default parameters and store their outputs (what nbval
replays in CI), then strip execution metadata. Run it after a change that alters a notebook's output:

    python scripts/refresh_notebooks.py                # every notebooks/NN_*.ipynb
    python scripts/refresh_notebooks.py 00 03          # by prefix

Same conditions as the replay in tests/test_notebooks.py: a fresh run cache, one torch thread, the embedded
synthetic set (R2MR_DATA_DIR is ignored), outputs of the quick run to scratch/.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r2mr.paths import REPO_ROOT  # noqa: E402
from r2mr.pipeline import clean_notebook, notebook_paths  # noqa: E402


def main(prefixes: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient

    runs = tempfile.mkdtemp(prefix="r2mr-refresh-runs-")
    os.environ.pop("R2MR_DATA_DIR", None)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend, so the figures are stored
    os.environ.update(R2MR_RUNS_DIR=runs, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                      PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    for path in notebook_paths(prefixes or None):
        t0 = time.time()
        nb = nbformat.read(str(path), as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(clean_notebook(nb), str(path))
        print(f"{path.name}: executed and cleaned in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
