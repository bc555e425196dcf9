"""Result store: validated reads (corrupt, tampered, foreign entries are refused), device-free keys with a strict
option, a movable store, one training per key across processes, safe checkpoint loading, run-dir keys."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from r2mr.cli import main as cli
from r2mr.core.atomic_io import load_torch, result_path, save_torch, write_json
from r2mr.core.errors import ConfigError, DataError
from r2mr.models import get_model
from r2mr.runs import store
from r2mr.runs.experiment import find, run_folder, train
from tests.conftest import TOY_ROWS, write_inter
from tests.test_r2mr_train import FAST

ARGS = {"bpr": {"max_epochs": 2, "device": "cpu", "overrides": {"batch_size": 512}},
        "lightgcn": {"max_epochs": 2, "device": "cpu", "overrides": {"batch_size": 512}},
        "r2mr": {"max_epochs": 1, "device": "cpu", "overrides": FAST}}


@pytest.fixture(scope="module")
def base(small_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding bpr, lightgcn and r2mr (seed 999) on ``small``."""
    runs = tmp_path_factory.mktemp("store") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(store.RUNS_ENV, str(runs))
        for model, kw in ARGS.items():
            train(model, "small", data_dir=small_root, progress=False, **kw)
    return runs


@pytest.fixture
def runs(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of ``base``, set as ``$R2MR_RUNS_DIR`` after r2mr was imported (read at call time)."""
    shutil.copytree(base, tmp_path / "runs")
    monkeypatch.setenv(store.RUNS_ENV, str(tmp_path / "runs"))
    return tmp_path / "runs"


def folder(root: Path, model: str = "bpr") -> Path:
    return run_folder(model, "small", data_dir=root, **ARGS[model])


def load(f: Path) -> dict:
    return json.loads((f / "result.json").read_text())


def reseal(f: Path, **changes: object) -> None:
    """Edit a record and recompute its digest with the store's own function (a valid-looking entry)."""
    rec = {**load(f), **changes}
    rec["digest"] = store.content_digest(rec)
    write_json(f / "result.json", rec)


def _edit_metric(f: Path, other: Path) -> None:
    rec = load(f)
    rec["test"]["recall@20"] += 0.01
    write_json(f / "result.json", rec)


def _drop(f: Path, field: str) -> None:
    rec = load(f)
    del rec[field]
    rec["digest"] = store.content_digest(rec)
    write_json(f / "result.json", rec)


TAMPER: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "corrupt json": (lambda f, o: (f / "result.json").write_text('{"model": "bpr", "test": '), "not valid JSON"),
    "truncated": (lambda f, o: (f / "result.json").write_text((f / "result.json").read_text()[:500]),
                  "not valid JSON"),
    "metric edited": (_edit_metric, "does not match its digest"),
    "other model copied in": (lambda f, o: shutil.copy(o / "result.json", f / "result.json"),
                              "holds model 'lightgcn', not the requested 'bpr'"),
    "other maths version": (lambda f, o: reseal(f, maths_version=2), "holds maths_version 2, not the requested 1"),
    "other seed": (lambda f, o: reseal(f, seed=1), "holds seed 1, not the requested 999"),
    "field missing": (lambda f, o: _drop(f, "valid"), "field 'valid' is missing"),
    "field of wrong type": (lambda f, o: reseal(f, epochs_run="2"), "field 'epochs_run' has type str"),
}


@pytest.mark.parametrize("case", TAMPER)
def test_bad_entry_is_refused_then_recomputed_with_restart(case: str, runs: Path, small_root: Path) -> None:
    f, (tamper, problem) = folder(small_root), TAMPER[case]
    good = load(f)
    tamper(f, folder(small_root, "lightgcn"))
    for call in (find, lambda *a, **k: train(*a, progress=False, **k)):
        with pytest.raises(ConfigError) as err:
            call("bpr", "small", data_dir=small_root, **ARGS["bpr"])
        msg = str(err.value)
        assert msg.startswith(f"{f / 'result.json'}: ") and problem in msg and "--restart" in msg and "\n" not in msg
    again = train("bpr", "small", data_dir=small_root, progress=False, resume=False, **ARGS["bpr"])
    assert again["cached"] is False and again["test"] == good["test"]  # recomputed, bit-identical on CPU
    assert find("bpr", "small", data_dir=small_root, **ARGS["bpr"])["digest"] == again["digest"]


def test_cli_prints_one_line_for_a_bad_entry(runs: Path, small_root: Path, capsys: pytest.CaptureFixture) -> None:
    _edit_metric(folder(small_root), runs)
    rc = cli.main(["train", "--model", "bpr", "--dataset", "small", "--data-dir", str(small_root), "--device", "cpu",
                   "--epochs", "2", "--set", "batch_size=512", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and err.startswith("error: ") and "--restart" in err


def test_record_fields_key_and_relative_paths(runs: Path, small_root: Path) -> None:
    rec = find("r2mr", "small", data_dir=small_root, **ARGS["r2mr"])
    key = json.loads((folder(small_root, "r2mr") / "key.json").read_text())
    assert rec["cached"] is True and rec["key"] == key["key"] and rec["maths_version"] == 1
    assert key["model"] == "r2mr" and key["seed"] == 999 and key["config"]["max_epochs"] == 1 and "device" not in key
    assert rec["device"] == "cpu" and rec["torch"] and rec["commit"] and rec["wall_seconds"] > 0
    assert rec["artifacts"] == "artifacts.pt"
    assert find("R2MR", "small", data_dir=small_root, **ARGS["r2mr"])["key"] == rec["key"]  # name canonicalised
    assert folder(small_root).parent.parent == runs  # $R2MR_RUNS_DIR set after import is honoured


def test_bumped_maths_version_does_not_find_old_results(runs: Path, small_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    old = folder(small_root)
    monkeypatch.setattr(get_model("bpr"), "maths_version", 2)
    assert folder(small_root) != old and find("bpr", "small", data_dir=small_root, **ARGS["bpr"]) is None


def test_gpu_made_result_fills_a_cpu_request_unless_strict(runs: Path, small_root: Path) -> None:
    f, kw = folder(small_root), dict(data_dir=small_root, **ARGS["bpr"])
    cpu = load(f)
    reseal(f, device="cuda", device_name="cuda (NVIDIA H200)")
    got = find("bpr", "small", **kw)
    assert got["device"] == "cuda" and got["test"] == cpu["test"]
    assert train("bpr", "small", progress=False, **kw)["device"] == "cuda"  # read back, not retrained
    assert find("bpr", "small", strict=True, **kw) is None
    strict = train("bpr", "small", progress=False, strict=True, **kw)
    assert strict["cached"] is False and strict["device"] == "cpu" and strict["history"][0]["epoch"] == 0
    assert strict["test"] == cpu["test"]
    reseal(f, torch="0.0")
    assert find("bpr", "small", **kw) is not None and find("bpr", "small", strict=True, **kw) is None


def test_moved_store_reads_back_with_its_artifacts(runs: Path, small_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = find("r2mr", "small", data_dir=small_root, **ARGS["r2mr"])
    moved = tmp_path / "mounted" / "elsewhere"
    shutil.move(str(runs), moved)
    monkeypatch.setenv(store.RUNS_ENV, str(moved))
    after = find("r2mr", "small", data_dir=small_root, **ARGS["r2mr"])
    assert after["test"] == before["test"] and Path(after["run_dir"]).is_relative_to(moved)
    art = load_torch(result_path(after))
    assert result_path(after).is_relative_to(moved) and art["scores"].shape[1] == 2


class Planted:
    """An object whose unpickling creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_planted_pickle_never_executes(runs: Path, small_root: Path, tmp_path: Path) -> None:
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Planted(control)))
    assert control.exists()  # the payload does run when unpickled naively
    f, marker = folder(small_root), tmp_path / "marker"
    torch_payload = {"epoch": 0, "config": {}, "x": Planted(marker)}
    save_torch(torch_payload, f / "checkpoint.pt")
    (f / "result.json").unlink()
    with pytest.raises(ConfigError, match=r"checkpoint\.pt: not a safe, readable torch file .*--restart"):
        train("bpr", "small", data_dir=small_root, progress=False, **ARGS["bpr"])
    save_torch(torch_payload, f / "artifacts.pt")
    with pytest.raises(ConfigError, match="artifacts.pt: not a safe"):
        load_torch(f / "artifacts.pt")
    assert not marker.exists()
    res = train("bpr", "small", data_dir=small_root, progress=False, resume=False, **ARGS["bpr"])
    assert res["cached"] is False and res["epochs_run"] == 2 and not marker.exists()


WORKER = """
import json, sys, time
from pathlib import Path
from r2mr.runs.experiment import train
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
start = time.time()
r = train("lightgcn", "small", data_dir=sys.argv[1], max_epochs=6, device="cpu", progress=False,
          overrides={"batch_size": 128})
print(json.dumps({"cached": r["cached"], "test": r["test"], "start": start, "done": time.time()}))
"""


def test_two_processes_train_a_key_once(small_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, store.RUNS_ENV: str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(small_root), str(tmp_path / f"ready{i}"), str(go)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 120
    while time.time() < deadline and not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        time.sleep(0.01)
    go.touch()  # both ask for the same key at the same moment
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    trained, waited = sorted(outs, key=lambda o: o["cached"])
    assert (trained["cached"], waited["cached"]) == (False, True)  # one trained, the other waited and read it
    assert waited["start"] < trained["done"]  # it asked while the other was training ...
    assert waited["done"] >= trained["done"] - 0.5  # ... and got its answer only once that training had ended
    assert waited["test"] == trained["test"]


def test_run_dir_is_reused_only_for_its_key(small_root: Path, tmp_path: Path) -> None:
    kw, rd = {"data_dir": small_root, "progress": False}, tmp_path / "rd"
    train("bpr", "small", run_dir=rd, **kw, **ARGS["bpr"])
    with pytest.raises(ConfigError, match=r"rd: this run folder holds another run \(differs in model.*--restart"):
        train("lightgcn", "small", run_dir=rd, **kw, **ARGS["lightgcn"])
    assert train("bpr", "small", run_dir=rd, **kw, **ARGS["bpr"])["cached"] is True
    taken = train("lightgcn", "small", run_dir=rd, resume=False, **kw, **ARGS["lightgcn"])  # --restart takes over
    assert taken["model"] == "lightgcn" and json.loads((rd / "key.json").read_text())["model"] == "lightgcn"
    (rd / "key.json").write_text("{")
    with pytest.raises(ConfigError, match=r"rd: this run folder holds another run \(its key.json is unreadable\)"):
        train("lightgcn", "small", run_dir=rd, **kw, **ARGS["lightgcn"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="mine: not empty and not a run folder"):
        train("bpr", "small", run_dir=mine, resume=False, **kw, **ARGS["bpr"])
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_read_only_runs_folder_is_one_line(small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setenv(store.RUNS_ENV, str(ro))
    if os.geteuid() == 0:  # root writes anyway: simulate what the kernel answers everyone else
        mkdir = Path.mkdir

        def refuse(self: Path, *a: object, **k: object) -> None:
            if self.is_relative_to(ro):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            mkdir(self, *a, **k)
        monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ConfigError) as err:
        train("bpr", "small", data_dir=small_root, progress=False, **ARGS["bpr"])
    msg = str(err.value)
    assert msg.startswith(str(ro)) and "Permission denied" in msg and store.RUNS_ENV in msg and "\n" not in msg


def test_dataset_given_as_a_path_writes_nothing_into_the_data_folder(runs: Path, small_root: Path) -> None:
    data = small_root / "small"
    listing = sorted(p.name for p in data.iterdir())
    res = train("bpr", str(data), progress=False, **ARGS["bpr"])
    assert res["cached"] is True and Path(res["run_dir"]) == folder(small_root)  # same run as --dataset small
    assert sorted(p.name for p in data.iterdir()) == listing
    with pytest.raises(ConfigError, match="is a path and --data-dir"):
        train("bpr", str(data), data_dir=small_root, progress=False, **ARGS["bpr"])


@pytest.mark.parametrize(("name", "fix"), [("baby", "python -m r2mr data download baby"),
                                           ("synthetic", "put <modality>_feat.npy files"),
                                           ("mine", "put <modality>_feat.npy files")])
def test_missing_features_fix_suggests_only_real_downloads(name: str, fix: str, tmp_path: Path) -> None:
    write_inter(tmp_path / name, TOY_ROWS)
    with pytest.raises(DataError, match="needs item features") as err:
        train("vbpr", name, data_dir=tmp_path, device="cpu", max_epochs=1, progress=False, run_dir=tmp_path / "r")
    assert fix in str(err.value) and ("download" in str(err.value)) == (name == "baby")
