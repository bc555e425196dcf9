"""Issue 22, a full or unwritable disk: one line naming the path and the OS's words, exit 2; the store keeps what
it had (a checkpoint write that fails leaves the previous checkpoint, and no temporary file)."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from r2mr.core import atomic_io as results
from r2mr.core.errors import StorageError
from r2mr.core.paths import REPO_ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "checkpoint.pt"
    results.save_torch({"w": 1}, target)
    before = target.read_bytes()
    real_open = open

    def full(path, mode="r", *a, **k):  # the OS's answer on a full disk, for the writes into the run folder
        if "w" in mode and str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(StorageError) as exc:
        results.save_torch({"w": 2}, target)
    monkeypatch.undo()
    line = str(exc.value)
    assert line.startswith(f"{target}: cannot write (No space left on device); fix: free space") and "\n" not in line
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
        with pytest.raises(StorageError, match=r"ro/r.json: cannot write \(Permission denied\)"):
            results.write_json(folder / "r.json", {"a": 1})
    finally:
        folder.chmod(0o700)


def _small_files() -> None:
    """In the child: files may grow to 64 KB, and a write past that is an error (EFBIG), not a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_train_on_a_disk_that_refuses_the_checkpoint(small_root: Path, tmp_path: Path) -> None:
    """A real write failure from the OS while ``train`` saves its first checkpoint (BPR on 450 rows x 64: about
    350 KB with the optimizer state, over the 64 KB the child may write): exit 2, one line, no temporary file."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "r2mr", "train", "--model", "bpr", "--dataset", "small", "--data-dir",
           str(small_root), "--device", "cpu", "--epochs", "2", "--run-dir", str(run), "--no-progress"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=_small_files)
    err = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith(("INFO ", "WARNING "))]
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and err[0].startswith(f"error: {run / 'checkpoint.pt'}: cannot write (File too large)")
    assert "Traceback" not in proc.stderr and "basic_ios" not in proc.stderr
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == ["key.json", "log.jsonl"]


@pytest.mark.parametrize("handler", [True, False], ids=["worker-policy", "default"])
def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path: Path, handler: bool) -> None:
    """A pool worker stopped by SIGTERM mid-write (Ctrl-C on --jobs N) removes its temporary file and still dies
    of the signal; without the policy the file is left behind (what the policy is for)."""
    code = (f"import os, signal, sys; from r2mr.core import atomic_io\n"
            f"{'atomic_io.remove_temporaries_on_sigterm()' if handler else ''}\n"
            f"with atomic_io.atomic_path(sys.argv[1]) as tmp:\n"
            f"    tmp.write_text('half')\n"
            f"    os.kill(os.getpid(), signal.SIGTERM)\n"
            f"    signal.pause()\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.json")], cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == -signal.SIGTERM
    left = [p.name for p in tmp_path.iterdir()]
    assert left == ([] if handler else left) and not (tmp_path / "out.json").exists()
    assert handler or len(left) == 1  # the default action skips ``finally``: the temporary file stays
