"""run_all.sh's engine: notebook discovery, data and device detection, parameter passing with papermill,
failure at the first failing notebook, and the notebook cleaner."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from r2mr.cli import pipeline
from r2mr.cli import plan_commands as plan_cli
from r2mr.cli.main import main
from r2mr.core.errors import ConfigError

from .conftest import TOY_ROWS, write_inter


def make_nb(path: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# T\n\nReproduces: nothing")])
    nb.cells.append(new_code_cell(sources[0], metadata={"tags": ["parameters"]}))
    nb.cells += [new_code_cell(s) for s in sources[1:]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_notebooks_are_globbed_in_order_and_selected_by_prefix(tmp_path: Path) -> None:
    for name in ["03_c.ipynb", "00_a.ipynb", "01_b.ipynb", "notes.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in pipeline.notebook_paths(None, tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "03_c.ipynb"]
    assert [p.name for p in pipeline.notebook_paths("03,00", tmp_path)] == ["00_a.ipynb", "03_c.ipynb"]
    with pytest.raises(ConfigError, match="no notebook matches '07'"):
        pipeline.notebook_paths("07", tmp_path)


def _args(**kw: object) -> argparse.Namespace:
    base = dict(datasets=None, data_dir=None, device="cpu", seeds=None, epochs=None, scale=None, notebooks=None,
                smoke=False, restart=False, jobs=1, ray=None, gpus_per_run=0.0, cpus_per_run=1)
    return argparse.Namespace(**{**base, **kw})


def test_invocation_detects_data_sets_and_applies_smoke_defaults(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2MR_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    write_inter(tmp_path / "data" / "baby", TOY_ROWS)
    write_inter(tmp_path / "data" / "tiktok", TOY_ROWS)
    inv = plan_cli.invocation(_args(data_dir="data", notebooks="00"))
    assert inv.datasets == ["baby", "synthetic", "tiktok"] and inv.seeds is None and inv.epochs is None  # auto
    assert inv.scale == "converged" and inv.output_root == "." and inv.force_since == 0.0  # the evidence
    assert inv.data_dir == str(tmp_path / "data")  # relative to the working directory, made absolute
    assert inv.parameters()["seeds"] == "auto"  # the notebooks apply r2mr.runs.plan.seeds_for
    assert "data_dir" not in inv.parameters()  # reaches the kernels as $R2MR_DATA_DIR, not in the notebooks
    assert pipeline.default_scale("cuda") == "converged" and pipeline.default_scale("cuda", smoke=True) == "quick"
    smoke = plan_cli.invocation(_args(data_dir=str(tmp_path / "empty"), smoke=True, restart=True))
    assert smoke.datasets == ["synthetic"] and not (tmp_path / "empty").exists()  # validation writes nothing
    assert (smoke.seeds, smoke.epochs, smoke.scale, smoke.output_root) == ([999], 2, "quick", "scratch/smoke")
    assert smoke.force_since > 0


@pytest.mark.parametrize("argv, message", [
    (["--datasets", "nosuch"], "--datasets 'nosuch': no nosuch/ under the data root"),
    (["--seeds", "abc"], "--seeds 'abc' is not allowed"),
    (["--seeds=-1"], "--seeds '-1' is not allowed"),
    (["--seeds", str(2**32)], f"--seeds '{2**32}' is not allowed"),
    (["--device", "tpu"], "argument --device: 'tpu' is not allowed"),  # usage errors: argparse, exit 2
    (["--epochs", "0"], "argument --epochs: '0' is not allowed"),
])
def test_run_all_validates_before_anything_runs(argv: list[str], message: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    write_inter(tmp_path / "baby", TOY_ROWS)
    ran = []
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: ran.append(1))
    try:
        status = main(["run-all", "--data-dir", str(tmp_path), *argv])
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert ran == [] and sorted(p.name for p in tmp_path.iterdir()) == ["baby"]  # nothing ran, nothing written


def test_device_detection() -> None:
    import torch

    assert plan_cli.check_device("cpu") == "cpu"
    assert plan_cli.check_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_clean_notebook_strips_execution_metadata_and_keeps_outputs() -> None:
    cell = new_code_cell("1", metadata={"execution": {"t": "1"}, "papermill": {"d": 2}, "tags": ["x"]},
                         outputs=[nbformat.v4.new_output("stream", text="1\n")])
    nb = new_notebook(cells=[cell])
    nb.metadata.update(papermill={"input_path": "/abs/in.ipynb", "output_path": "/abs/out", "parameters": {"a": 1}},
                       kernelspec={"name": "my-env", "display_name": "x"})
    clean = pipeline.clean_notebook(nb)
    assert clean.metadata.kernelspec.name == "python3" and "papermill" not in clean.metadata
    assert clean.cells[0].metadata == {"tags": ["x"]} and clean.cells[0].outputs[0].text == "1\n"
    kept = pipeline.clean_notebook(nb, keep_papermill=True)
    assert kept.metadata.papermill == {"parameters": {"a": 1}}
    assert nb.metadata.papermill["input_path"] == "/abs/in.ipynb"  # the input is not modified


def test_execute_passes_declared_parameters_and_stops_on_failure(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    good = make_nb(nbdir / "00_good.ipynb", "seeds = '1'\nepochs = 3", "print('seeds', seeds, 'epochs', epochs)")
    bad = make_nb(nbdir / "01_bad.ipynb", "scale = 'quick'", "raise ValueError('boom ' + scale)")
    later = make_nb(nbdir / "02_later.ipynb", "x = 1", "print('never')")
    executed = tmp_path / "out" / "results" / "executed"
    executed.mkdir(parents=True)
    (executed / "00_good.ipynb").write_text("committed copy")
    inv = pipeline.Invocation(datasets=["synthetic"], data_dir=None, device="cpu", seeds=[7, 8], epochs=None,
                              scale="full", force_since=0.0, output_root=str(tmp_path / "out"),
                              notebooks=[good, bad, later])
    monkeypatch.setattr(pipeline.Invocation, "scratch_dir", property(lambda self: tmp_path / "scratch"))
    with pytest.raises(pipeline.NotebookFailed,
                       match=r"01_bad.ipynb failed in cell In \[3\] \(ValueError: boom full\)"):
        pipeline.run(inv)
    assert (executed / "00_good.ipynb").read_text() == "committed copy"  # a failed run replaces no executed copy
    assert (tmp_path / "scratch" / "01_bad.ipynb").is_file()  # the failed copy, with its traceback, waits aside
    inv.notebooks = [good]
    assert pipeline.run(inv) == [executed / "00_good.ipynb"]  # all succeeded: moved into place
    done = nbformat.read(str(executed / "00_good.ipynb"), 4)
    assert "seeds 7,8 epochs None" in done.cells[-1].outputs[0].text  # injected values, declared keys only
    assert "input_path" not in done.metadata.papermill and done.metadata.papermill["parameters"]["seeds"] == "7,8"
    assert "device" not in done.metadata.papermill["parameters"]
    assert not (executed / "02_later.ipynb").exists() and not (tmp_path / "scratch" / "02_later.ipynb").exists()
    assert "papermill" not in nbformat.read(str(good), 4).metadata  # the committed notebook is untouched


def test_cli_run_all_reports_a_bad_prefix(capsys: pytest.CaptureFixture) -> None:
    assert main(["run-all", "--notebooks", "99", "--device", "cpu", "--datasets", "synthetic"]) == 2
    assert "no notebook matches '99'" in capsys.readouterr().err


def test_notebooks_that_need_an_unregistered_model_are_skipped(tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    needs = make_nb(nbdir / "00_needs.ipynb", "x = 1", "print('ran')")
    nb = nbformat.read(str(needs), 4)
    nb.metadata["r2mr"] = {"requires_models": ["bpr", "not-a-model"]}
    nbformat.write(nb, str(needs))
    assert pipeline.missing_models(needs) == ["not-a-model"]
    inv = pipeline.Invocation(datasets=["synthetic"], data_dir=None, device="cpu", seeds=[1], epochs=1, scale="quick",
                              force_since=0.0, output_root=str(tmp_path / "out"), notebooks=[needs])
    import io

    stream = io.StringIO()
    assert pipeline.run(inv, stream) == []
    assert "00_needs.ipynb skipped: needs model(s) not-a-model" in stream.getvalue()


def test_run_leaves_the_environment_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels see this checkout, the data root and no MPLBACKEND; the caller's process gets its own back."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("R2MR_DATA_DIR", raising=False)
    monkeypatch.setenv("PYTHONPATH", "somewhere")
    seen = {}

    def fake_execute(path: Path, inv: pipeline.Invocation, stream: object) -> Path:
        seen.update({k: os.environ.get(k) for k in ("MPLBACKEND", "R2MR_DATA_DIR", "PYTHONPATH")})
        raise pipeline.NotebookFailed("stop here")

    monkeypatch.setattr(pipeline, "execute", fake_execute)
    before = dict(os.environ)
    nb = make_nb(tmp_path / "00_x.ipynb", "x = 1", "print(x)")
    inv = pipeline.Invocation(datasets=["synthetic"], data_dir=tmp_path / "data", device="cpu", seeds=[1], epochs=1,
                              scale="quick", force_since=0.0, output_root=str(tmp_path / "out"), notebooks=[nb])
    with pytest.raises(pipeline.NotebookFailed):
        pipeline.run(inv, io.StringIO())
    assert seen["MPLBACKEND"] is None and seen["R2MR_DATA_DIR"] == str(tmp_path / "data")
    assert seen["PYTHONPATH"].endswith(os.pathsep + "somewhere")
    assert dict(os.environ) == before
