"""Command line: help without torch, choices listed, --version, aliases, exit codes, and the argument checks
(input -> one line, exit status 2, nothing written)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r2mr import __version__
from r2mr.cli import arguments
from r2mr.cli import main as cli
from r2mr.core.errors import ConfigError, TrainingError
from r2mr.core.names import DOWNLOADABLE, MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m r2mr argv`` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["data", "synth", "--help"], ["run-all", "--help"],
                                  ["--version"]])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    code = ("import runpy, sys; sys.argv = ['r2mr', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('r2mr', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'scipy', 'sklearn'))\n"
            "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_help_is_current_and_lists_choices(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(["--help"], capsys)
    assert status == 0
    for c in cli.COMMANDS:
        assert c.name in out
    _, out, _ = run_cli(["train", "--help"], capsys)
    assert all(m in out for m in MODEL_NAMES) and "{auto,cpu,cuda,cuda:N}" in out and "--epochs" in out
    assert "--max-epochs" not in out and "--force" not in out  # old names are hidden aliases
    _, out, _ = run_cli(["run-all", "--help"], capsys)
    assert "{auto,cpu,cuda,cuda:N}" in out and "{quick,full,converged}" in out
    assert "--restart" in out and "--retrain" in out and "--force" not in out
    prefixes = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert prefixes and "{" + ",".join(prefixes) + "}" in out
    _, out, _ = run_cli(["data", "download", "--help"], capsys)
    assert "{" + ",".join(DOWNLOADABLE) + "}" in out
    _, out, _ = run_cli(["data", "synth", "--help"], capsys)
    assert "generator seed" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(["--version"], capsys)
    assert (status, out.strip()) == (0, f"r2mr {__version__}")


def test_static_names_match_the_registries() -> None:
    from r2mr.data.download import DATASETS
    from r2mr.models import MODELS

    assert MODEL_NAMES == tuple(MODELS)
    assert DOWNLOADABLE == tuple(DATASETS)


@pytest.mark.parametrize("command", [["train", "--model", "BPR", "--dataset", "x"], ["run-all"]])
def test_deprecated_aliases(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args([*command, "--max-epochs", "7", "--force"])
    assert (args.epochs, args.restart) == (7, True)
    err = capsys.readouterr().err
    assert "--max-epochs is deprecated; use --epochs" in err and "--force is deprecated; use --restart" in err
    args = parser.parse_args([*command, "--epochs", "3"])
    assert (args.epochs, args.restart) == (3, False)
    if command[0] == "train":
        assert args.model == "bpr"  # model names are case-insensitive


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_exit_codes_for_bad_input(small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(["train", "--model", "bpr", "--dataset", "small", "--no-such-flag"], capsys)
    assert status == 2 and "unrecognized arguments: --no-such-flag" in one_error_line(err)
    status, _, err = run_cli(["train", "--model", "bpr", "--dataset", "small", "--data-dir", str(small_root),
                              "--set", "no_such_key=1", "--run-dir", str(tmp_path / "run")], capsys)
    assert status == 2 and "no_such_key" in one_error_line(err)
    status, _, err = run_cli(["data", "check", "nosuch", "--data-dir", str(tmp_path)], capsys)
    assert status == 2 and "nosuch" in one_error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("exc, status", [(TrainingError("non-finite loss at epoch 3"), 3),
                                         (ConfigError("config key 'lr' is bad"), 2), (KeyboardInterrupt(), 130)])
def test_exit_codes_for_runs(exc: BaseException, status: int, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    import r2mr.runs.experiment

    def fail(*args: object, **kwargs: object) -> None:
        raise exc
    monkeypatch.setattr(r2mr.runs.experiment, "train", fail)
    got, _, err = run_cli(["train", "--model", "bpr", "--dataset", "small"], capsys)
    assert got == status and len(err.strip().splitlines()) == 1, err


def test_failed_notebook_exits_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import r2mr.cli.pipeline
    import r2mr.cli.plan_commands

    def fail(*args: object, **kwargs: object) -> None:
        raise r2mr.cli.pipeline.NotebookFailed("00_data.ipynb failed in cell In [3] (KeyError: 'x')")
    monkeypatch.setattr(r2mr.cli.plan_commands, "invocation", fail)
    status, _, err = run_cli(["run-all", "--smoke"], capsys)
    assert status == 3 and "00_data.ipynb failed" in one_error_line(err)


def test_sigint_exits_130_with_one_line(small_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "r2mr", "train", "--model", "bpr", "--dataset", "small", "--data-dir",
           str(small_root), "--device", "cpu", "--epochs", "500", "--set", "patience=1000", "--set", "batch_size=64",
           "--run-dir", str(run), "--no-progress"]
    # a shell that starts the test suite in the background ignores SIGINT, and Python keeps an ignored SIGINT
    # ignored: give the child the default disposition, so Python turns SIGINT into KeyboardInterrupt
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log, deadline = run / "log.jsonl", time.time() + 120
    while time.time() < deadline and not (log.is_file() and log.read_text()):  # the first epoch is done
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: rerun the same command")
    assert "Traceback" not in err and not (run / "result.json").exists()


def cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(extra train arguments, text the error line must contain)."""
    (tmp / "folder").mkdir()
    (tmp / "latin1.yaml").write_bytes("lr: 0.001  # r\xe9glage\n".encode("latin-1"))
    return [(["--seed", "-1"], "--seed: '-1' is not allowed"),
            (["--seed", str(2**32)], "--seed: '4294967296' is not allowed"),
            (["--seed", "abc"], "--seed: 'abc' is not allowed"),
            (["--device", "tpu"], "--device: 'tpu' is not allowed (allowed: auto, cpu, cuda, cuda:N)"),
            (["--device", "mps"], "--device: 'mps' is not allowed"),
            (["--device", ""], "--device: '' is not allowed"),
            (["--device", "cuda:x"], "--device: 'cuda:x' is not allowed"),
            (["--epochs", "0"], "--epochs: '0' is not allowed (allowed: an integer >= 1)"),
            (["--max-epochs", "-3"], "--max-epochs: '-3' is not allowed"),
            (["--config", str(tmp / "folder")], "is a folder, not a config file"),
            (["--config", str(tmp / "missing.yaml")], "config file not found"),
            (["--config", str(tmp / "latin1.yaml")], "not UTF-8 text"),
            (["--out", str(tmp / "folder")], "is a folder; fix: name a file"),
            (["--out", str(tmp / "latin1.yaml" / "r.json")], "is a file, not a folder")]


def test_bad_arguments_one_line_status_2_nothing_written(small_root: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "--model", "bpr", "--dataset", "small", "--data-dir", str(small_root), "--device", "cpu",
            "--epochs", "2", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    work = tmp_path / "work"
    work.mkdir()
    table = cases(work)
    before, data_before = snapshot(tmp_path), snapshot(small_root)
    for extra, expected in table:
        status, out, err = run_cli(base + extra, capsys)
        assert status == 2 and expected in one_error_line(err), (extra, err)
        assert out == "" and snapshot(tmp_path) == before and snapshot(small_root) == data_before, extra
    for extra in (["--device", "tpu"], ["--epochs", "0"], ["--seeds", "1", "--device", "mps"]):
        status, _, err = run_cli(["run-all", *extra], capsys)
        assert status == 2 and "is not allowed" in one_error_line(err)
    status, _, err = run_cli(["data", "synth", "--out", str(work / "syn"), "--seed", "-5"], capsys)
    assert status == 2 and "--seed: '-5' is not allowed" in one_error_line(err)
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_into_read_only_folder(small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        status, _, err = run_cli(["train", "--model", "bpr", "--dataset", "small", "--data-dir", str(small_root),
                                  "--run-dir", str(tmp_path / "run"), "--out", str(ro / "r.json")], capsys)
    finally:
        ro.chmod(0o755)
    assert status == 2 and "is not writable" in one_error_line(err)
    assert not (tmp_path / "run").exists() and not list(ro.iterdir())


def test_out_checks_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writability check itself, where the test cannot drop root's rights: os.access says no."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=r"--out .*r.json: folder .* is not writable; fix: choose a writable"):
        arguments.check_out_file(str(tmp_path / "sub" / "r.json"))
