"""Keep the committed notebooks and their CI check in step with the code. Two jobs:

    python scripts/refresh_notebooks.py --publish      # results/executed/NN_*.ipynb -> notebooks/ (cleaned)
    python scripts/refresh_notebooks.py                # re-run each notebook's default quick run and store the
    python scripts/refresh_notebooks.py 00 03          #   outputs of its checked cells (by prefix)

``--publish`` (after ``bash run_all.sh``): the committed notebooks carry the outputs of the run whose numbers
are in ``results/`` -- the executed copies that ``run_all.sh`` left in ``results/executed/``, with execution
metadata stripped and the repository's absolute path shown as ``.``. Papermill's ``injected-parameters`` cell
becomes a Markdown note showing the same parameters (``r2mr.report.notebook_setup.committed_note``): a reader sees which
parameters produced the outputs, and executing the committed notebook uses its defaults (output to scratch/)
instead of writing into results/.

Without ``--publish``: each notebook's default run (its ``parameters`` cell: the embedded synthetic set, one
seed, quick size), executed under the conditions of the replay in tests/test_notebooks.py (a fresh run cache,
one torch thread, CPU kernels pinned to one code path, R2MR_DATA_DIR ignored, outputs to scratch/). The
outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` go to ``tests/fixtures/notebook_checks/NN_*.json``; the
replay compares against them. Run it after a change that alters such an output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r2mr.cli.pipeline import checked_outputs, clean_notebook, default_run, notebook_paths  # noqa: E402
from r2mr.cli.staging import replay_environment  # noqa: E402
from r2mr.core.atomic_io import write_text  # noqa: E402
from r2mr.core.paths import REPO_ROOT, RESULTS  # noqa: E402
from r2mr.report.notebook_setup import committed_note  # noqa: E402

CHECKS = REPO_ROOT / "tests" / "fixtures" / "notebook_checks"


def refresh_checks(prefixes: list[str]) -> None:
    import nbformat
    from nbclient import NotebookClient

    env = replay_environment(Path(tempfile.mkdtemp(prefix="r2mr-refresh-runs-")), os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernels nbclient starts inherit it
    for path in notebook_paths(prefixes or None):
        t0 = time.time()
        nb = nbformat.from_dict(default_run(nbformat.read(str(path), as_version=4)))
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        target = CHECKS / f"{path.stem}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, json.dumps(checked_outputs(clean_notebook(nb)), indent=1) + "\n")
        print(f"{path.name}: default run in {time.time() - t0:.0f} s -> {target.relative_to(REPO_ROOT)}")


def publish(prefixes: list[str]) -> int:
    import nbformat

    for path in notebook_paths(prefixes or None):
        executed = RESULTS / "executed" / path.name
        if not executed.is_file():
            print(f"error: {executed.relative_to(REPO_ROOT)}: not found; fix: run `bash run_all.sh` first",
                  file=sys.stderr)
            return 2
        nb = committed_note(clean_notebook(nbformat.read(str(executed), as_version=4)), path.stem)
        text = nbformat.writes(nbformat.from_dict(nb)) + "\n"
        write_text(path, text.replace(str(REPO_ROOT) + "/", "./").replace(str(REPO_ROOT), "."))
        print(f"{path.relative_to(REPO_ROOT)} <- {executed.relative_to(REPO_ROOT)}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/refresh_notebooks.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--publish", action="store_true",
                        help="copy results/executed/NN_*.ipynb to notebooks/ (cleaned, parameters as a note)")
    parser.add_argument("prefixes", nargs="*", help="notebook prefixes, e.g. 00 03 (default: all)")
    args = parser.parse_args(argv)
    if args.publish:
        return publish(args.prefixes)
    refresh_checks(args.prefixes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
