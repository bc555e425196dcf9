"""run_all.sh's engine: notebook discovery, data and device detection, parameter passing with papermill,
failure at the first failing notebook, and the notebook cleaner."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from r2mr import pipeline
from r2mr.cli import main
from r2mr.errors import ConfigError

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


def test_plan_detects_data_sets_and_applies_smoke_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2MR_DATA_DIR", raising=False)
    write_inter(tmp_path / "data" / "baby", TOY_ROWS)
    write_inter(tmp_path / "data" / "tiktok", TOY_ROWS)
    plan = pipeline.make_plan(data_dir="data", caller_cwd=str(tmp_path), device="cpu", notebooks="00")
    assert plan.datasets == ["baby", "tiktok"] and plan.seeds == [999, 1, 2] and plan.epochs is None
    assert plan.scale == "quick" and plan.output_root == "." and plan.force_since == 0.0  # CPU default
    assert pipeline.default_scale("cuda") == "full" and pipeline.default_scale("cuda", smoke=True) == "quick"
    assert not Path(plan.data_dir).is_absolute() and (pipeline.REPO_ROOT / plan.data_dir).resolve() == (tmp_path / "data").resolve()
    made = []
    monkeypatch.setattr(pipeline, "locate", lambda name, root=None, **kw: made.append(name))
    smoke = pipeline.make_plan(data_dir=str(tmp_path / "empty"), smoke=True, force=True, device="cpu")
    assert smoke.datasets == ["synthetic"] and made == ["synthetic"]
    assert (smoke.seeds, smoke.epochs, smoke.scale, smoke.output_root) == ([999], 2, "quick", "scratch/smoke")
    assert smoke.force_since > 0
    assert pipeline.make_plan(datasets="baby,sports", seeds="5", epochs=7, device="cpu").parameters()["seeds"] == "5"


def test_device_detection() -> None:
    import torch

    assert pipeline.resolve_device("cpu") == "cpu"
    assert pipeline.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_clean_notebook_strips_execution_metadata_and_keeps_outputs() -> None:
    nb = new_notebook(cells=[new_code_cell("1", metadata={"execution": {"t": "1"}, "papermill": {"d": 2}, "tags": ["x"]},
                                           outputs=[nbformat.v4.new_output("stream", text="1\n")])])
    nb.metadata.update(papermill={"input_path": "/abs/in.ipynb", "output_path": "/abs/out", "parameters": {"a": 1}},
                       kernelspec={"name": "my-env", "display_name": "x"})
    clean = pipeline.clean_notebook(nb)
    assert clean.metadata.kernelspec.name == "python3" and "papermill" not in clean.metadata
    assert clean.cells[0].metadata == {"tags": ["x"]} and clean.cells[0].outputs[0].text == "1\n"
    kept = pipeline.clean_notebook(nb, keep_papermill=True)
    assert kept.metadata.papermill == {"parameters": {"a": 1}}
    assert nb.metadata.papermill["input_path"] == "/abs/in.ipynb"  # the input is not modified


def test_execute_passes_declared_parameters_and_stops_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    good = make_nb(nbdir / "00_good.ipynb", "seeds = '1'\nepochs = 3", "print('seeds', seeds, 'epochs', epochs)")
    bad = make_nb(nbdir / "01_bad.ipynb", "scale = 'quick'", "raise ValueError('boom ' + scale)")
    later = make_nb(nbdir / "02_later.ipynb", "x = 1", "print('never')")
    plan = pipeline.Plan(datasets=["synthetic"], data_dir=None, device="cpu", seeds=[7, 8], epochs=None, scale="full",
                         force_since=0.0, output_root=str(tmp_path / "out"), notebooks=[good, bad, later])
    with pytest.raises(pipeline.NotebookFailed, match=r"01_bad.ipynb failed in cell In \[3\] \(ValueError: boom full\)"):
        pipeline.run(plan)
    done = nbformat.read(str(tmp_path / "out" / "results" / "executed" / "00_good.ipynb"), 4)
    assert "seeds 7,8 epochs None" in done.cells[-1].outputs[0].text  # injected values, declared keys only
    assert "input_path" not in done.metadata.papermill and done.metadata.papermill["parameters"]["seeds"] == "7,8"
    assert "device" not in done.metadata.papermill["parameters"]
    assert not (tmp_path / "out" / "results" / "executed" / "02_later.ipynb").exists()
    assert "papermill" not in nbformat.read(str(good), 4).metadata  # the committed notebook is untouched


def test_cli_run_all_reports_a_bad_prefix(capsys: pytest.CaptureFixture) -> None:
    assert main(["run-all", "--notebooks", "99", "--device", "cpu", "--datasets", "baby"]) == 2
    assert "no notebook matches '99'" in capsys.readouterr().err


def test_notebooks_that_need_an_unregistered_model_are_skipped(tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    needs = make_nb(nbdir / "00_needs.ipynb", "x = 1", "print('ran')")
    nb = nbformat.read(str(needs), 4)
    nb.metadata["r2mr"] = {"requires_models": ["bpr", "not-a-model"]}
    nbformat.write(nb, str(needs))
    assert pipeline.missing_models(needs) == ["not-a-model"]
    plan = pipeline.Plan(datasets=["synthetic"], data_dir=None, device="cpu", seeds=[1], epochs=1, scale="quick",
                         force_since=0.0, output_root=str(tmp_path / "out"), notebooks=[needs])
    import io

    stream = io.StringIO()
    assert pipeline.run(plan, stream) == []
    assert "00_needs.ipynb skipped: needs model(s) not-a-model" in stream.getvalue()
