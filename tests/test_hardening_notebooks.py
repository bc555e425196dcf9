"""Issue 22, the notebooks and the set-up: an invocation of run_all.sh's notebooks is atomic (a dead kernel or a
failing cell leaves the committed outputs as they were, one line, exit 3); the set-up installs its kernel into
the environment and leaves $HOME alone."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from r2mr.cli import pipeline, staging
from r2mr.cli.main import main
from r2mr.core.errors import ConfigError
from r2mr.core.paths import REPO_ROOT

from .conftest import TOY_ROWS, write_inter
from .test_pipeline import make_nb

WRITE = ("import matplotlib.pyplot as plt, pandas as pd\nfrom r2mr.report import outputs\n"
         "out = outputs.Outputs('{name}', output_root)\nprint(out.table(pd.DataFrame({{'x': [2.0]}}), 't'))\n"
         "fig = plt.figure(); print(out.figure(fig, 'f')); print(out.finish({{}}))")
DIE = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def invocation(notebooks: list[Path], output_root: str) -> pipeline.Invocation:
    return pipeline.Invocation(datasets=["synthetic"], data_dir=None, device="cpu", seeds=[1], epochs=None,
                               scale="quick", force_since=0.0, output_root=output_root, notebooks=notebooks)


def committed_outputs(root: Path) -> None:
    """What a committed results run left: a table, a figure and the executed copy of 00_write."""
    (root / "results" / "00_write").mkdir(parents=True)
    (root / "results" / "00_write" / "t.csv").write_text("committed\n")
    (root / "figures").mkdir()
    (root / "figures" / "00_write_f.png").write_bytes(b"committed")
    (root / "results" / "executed").mkdir()
    (root / "results" / "executed" / "00_write.ipynb").write_text("committed copy")


def test_dead_kernel_leaves_the_outputs_as_they_were(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    first = make_nb(nbs / "00_write.ipynb", "output_root = None", WRITE.format(name="00_write"))
    dies = make_nb(nbs / "01_die.ipynb", "x = 1", DIE)
    root = tmp_path / "repo-outputs"
    committed_outputs(root)
    before = snapshot(root)
    inv = invocation([first, dies], str(root))
    with pytest.raises(pipeline.NotebookFailed) as exc:
        pipeline.run(inv)
    line = str(exc.value)
    assert "\n" not in line and line.startswith("01_die.ipynb failed (DeadKernelError: ") and \
        "the committed outputs are unchanged" in line
    assert snapshot(root) == before  # 00_write ran, but its table and figure are staged, not in place
    inv.notebooks = [first]  # all succeed: the staged files replace the committed ones together
    assert pipeline.run(inv) == [root / "results" / "executed" / "00_write.ipynb"]
    after = snapshot(root)
    assert after["results/00_write/t.csv"].startswith(b",x\n") and after["figures/00_write_f.png"] != b"committed"
    assert "results/00_write/run.json" in after and after["results/executed/00_write.ipynb"] != b"committed copy"
    executed = json.loads(after["results/executed/00_write.ipynb"])
    printed = "".join("".join(o.get("text", [])) for c in executed["cells"] for o in c.get("outputs", []))
    assert "staging" not in printed and "t.csv" in printed  # listed as the final paths
    assert not inv.scratch_dir.exists()  # the staging folder is gone


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_killed_kernel_mid_run_leaves_git_status_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """Through ``run-all`` into the repository's own results/ and figures/ (output root "."): exit 3, one line,
    and not one tracked or untracked file changed."""
    name = "00_hardening_probe"
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    notebooks = [make_nb(nbs / f"{name}.ipynb", "output_root = None", WRITE.format(name=name)),
                 make_nb(nbs / "01_die.ipynb", "x = 1", DIE)]
    import r2mr.cli.plan_commands

    real = r2mr.cli.plan_commands.invocation

    def with_test_notebooks(args: object) -> pipeline.Invocation:
        inv = real(args)
        inv.notebooks = notebooks
        return inv
    monkeypatch.setattr(r2mr.cli.plan_commands, "invocation", with_test_notebooks)
    monkeypatch.setattr(r2mr.cli.plan_commands, "staged_plan", lambda inv: ([], []))  # no training runs
    write_inter(tmp_path / "data" / "toy", TOY_ROWS)
    before = git_status()
    try:
        status = main(["run-all", "--datasets", "toy", "--data-dir", str(tmp_path / "data"), "--device", "cpu",
                       "--notebooks", "00"])
        err = capsys.readouterr().err
        assert status == 3 and err.count("\n") == 1 and err.startswith("error: 01_die.ipynb failed"), err
        assert git_status() == before
        assert not list((REPO_ROOT / "results").glob(f"{name}*")) and not list(REPO_ROOT.glob(f"figures/{name}*"))
    finally:  # the test's own files, had the staging failed
        for p in [*(REPO_ROOT / "results").glob(f"{name}/*"), *REPO_ROOT.glob(f"figures/{name}_*")]:
            p.unlink()
        if (REPO_ROOT / "results" / name).is_dir():
            (REPO_ROOT / "results" / name).rmdir()


def test_set_up_installs_the_kernel_into_the_environment_and_leaves_home_alone(tmp_path: Path) -> None:
    """scripts/ensure_env.sh on an environment without the kernel, with $HOME holding the user's own python3
    kernel: the kernel goes to <env>/share/jupyter/kernels/r2mr, $HOME stays byte-identical."""
    home = tmp_path / "home"
    user_kernel = home / ".local" / "share" / "jupyter" / "kernels" / "python3"
    user_kernel.mkdir(parents=True)
    (user_kernel / "kernel.json").write_text(json.dumps({"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher",
                                                                  "-f", "{connection_file}"],
                                                         "display_name": "My Python 3", "language": "python"}))
    before = snapshot(home)
    env_dir = tmp_path / "env"  # an environment that sees this one's packages, without the kernel yet
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = next(env_dir.glob("lib/python*/site-packages"))
    (site / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n" + str(REPO_ROOT) + "\n")
    digest = hashlib.sha1((REPO_ROOT / "pyproject.toml").read_bytes() + (REPO_ROOT / "constraints.txt").read_bytes()
                          + (sys.version + "\n").encode())  # the stamp of scripts/ensure_env.sh
    (env_dir / ".r2mr-installed").write_text(digest.hexdigest()[:16] + "\nnotebooks\n")  # nothing to pip install
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "JUPYTER"))}
    env.update(HOME=str(home), R2MR_VENV=str(env_dir), R2MR_EXTRAS="notebooks")
    proc = subprocess.run(["bash", "-c", "source scripts/ensure_env.sh"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stdout  # the stamp held: only the kernel was missing
    assert snapshot(home) == before and sorted(p.name for p in home.iterdir()) == [".local"]
    spec = json.loads((env_dir / "share" / "jupyter" / "kernels" / "r2mr" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).parent == env_dir / "bin"  # this environment's Python
    listing = "from jupyter_client.kernelspec import KernelSpecManager as M; print(M().find_kernel_specs())"
    found = subprocess.run([str(env_dir / "bin" / "python"), "-c", listing], env={**env, "IPYTHONDIR": str(
        tmp_path / "ipython")}, capture_output=True, text=True, timeout=120, check=True).stdout
    assert Path(ast.literal_eval(found)["r2mr"]) == env_dir / "share" / "jupyter" / "kernels" / "r2mr"  # papermill's


def test_pipeline_asks_for_its_own_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    assert staging.kernel_name() == "r2mr"
    monkeypatch.setattr(sys, "prefix", str(REPO_ROOT / "no-such-environment"))
    with pytest.raises(ConfigError, match="kernel 'r2mr' is not installed .*fix: run `source scripts/"):
        staging.kernel_name()
