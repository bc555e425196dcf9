"""The package works installed from its wheel (issue 20, item 5): built from a copy of the sources, installed into
a fresh virtual environment outside the repository, run from an empty working directory. Configs ship as package
data; data and runs default to the working directory, not to the installation folder.

The fresh environment reuses this environment's third-party packages (a ``.pth`` line naming its site-packages,
which adds the folder but none of its ``.pth`` files, so this checkout's editable install stays out), so nothing
is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# about 30 s on 2 cores (builds a wheel, trains one epoch): in the default suite


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(python of a fresh venv holding the installed wheel, an environment without this checkout)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(REPO / "r2mr", src / "r2mr", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("R2MR_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheel"),
         str(src)], tmp, env)
    (wheel,) = (tmp / "wheel").glob("r2mr-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], tmp, env)
    python = tmp / "venv" / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip())
    (site / "reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)], tmp, env)
    return python, env


def test_the_installed_package_plans_and_trains_in_the_working_directory(installed, tmp_path: Path) -> None:
    python, env = installed
    where = run([str(python), "-c", "import r2mr.runs.tuning as t; print(t.__file__); print(t.DEFAULT.is_file())"],
                tmp_path, env).split()
    assert str(REPO) not in where[0] and "site-packages" in where[0] and where[1] == "True"  # the wheel's copy
    run([str(python), "-m", "r2mr", "data", "synth", "--out", "data/tiny", "--set", "n_users=120", "--set",
         "n_items=80", "--set", "text_dim=8", "--set", "image_dim=8"], tmp_path, env)
    plan = run([str(python), "-m", "r2mr", "plan", "--datasets", "tiny", "--device", "cpu", "--notebooks", "03",
                "--seeds", "1", "--epochs", "1"], tmp_path, env)
    assert "tiny" in plan and "stored" in plan, plan
    out = run([str(python), "-m", "r2mr", "train", "--model", "bpr", "--dataset", "tiny", "--epochs", "1",
               "--device", "cpu", "--seed", "1"], tmp_path, env)
    assert "recall@20" in out, out
    assert list((tmp_path / "runs" / "tiny").glob("bpr-*-seed1/result.json"))  # the store is in the working dir
    assert not list(python.parents[1].rglob("tiny"))  # nothing of the run or the data in the installation
