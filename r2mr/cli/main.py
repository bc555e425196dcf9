"""Command line: ``python -m r2mr <command> ...``, the only place that parses arguments.

The commands are rows of :data:`COMMANDS`; each row names a help line, a function that adds its arguments and
a function that runs it (``args -> exit status``). A command from another module is added as one row with
:func:`lazy` (``add_arguments(parser)`` and ``main(args) -> int`` in that module, which must stay light to import).
Importing this module does not import torch: heavy modules are imported inside the commands. Argument types
and checks shared by the commands (seed, device, epochs, paths) are in :mod:`r2mr.cli.arguments`.

Exit status: 0 ok; 2 bad input (usage, config or data error, reported on one line); 3 a run or a notebook
failed (:class:`r2mr.core.errors.TrainingError`, ``NotebookFailed``); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from ..core import __version__, threads
from ..core.errors import R2MRError, TrainingError
from ..core.names import DOWNLOADABLE, MODEL_NAMES
from ..core.paths import REPO_ROOT
from . import arguments

EXIT_OK, EXIT_BAD_INPUT, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)  # disk full, unwritable

log = logging.getLogger("r2mr")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``error: <command>: <problem>; fix: ...``, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message}; fix: see `{self.prog} --help`\n")


# -- train ---------------------------------------------------------------------------------------------------
def add_train_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--model", required=True, type=str.lower, choices=MODEL_NAMES, help="the model (any case)")
    t.add_argument("--dataset", required=True, help="data set folder name under the data root")
    arguments.add_data_dir(t)
    arguments.add_device(t)
    arguments.add_seed(t, None, "random seed (default 999)")
    arguments.add_epochs(t, "(default: the model's, with early stopping)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model or training config key (repeatable), e.g. --set n_layers=3")
    t.add_argument("--config", help="YAML file of config keys (applied before --set)")
    t.add_argument("--out", help="also write the result JSON to this file")
    t.add_argument("--run-dir", help="checkpoint/log folder (default runs/<dataset>/<model>-<key>-seed<N>)")
    arguments.add_restart(t, "ignore an existing checkpoint or result and start over")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars (the log lines stay)")


def cmd_train(args: argparse.Namespace) -> int:
    from ..core import config as cfgmod

    if args.out:
        arguments.check_out_file(args.out)
    overrides = cfgmod.load_yaml(args.config) if args.config else {}
    overrides.update(cfgmod.parse_overrides(args.overrides))

    from ..core.atomic_io import write_json
    from ..runs.experiment import train
    from ..training.progress import summary_line

    res = train(args.model, args.dataset, data_dir=args.data_dir, overrides=overrides, device=args.device,
                seed=args.seed, max_epochs=args.epochs, run_dir=args.run_dir, resume=not args.restart,
                progress=not args.no_progress)
    if args.out:
        write_json(args.out, res)
    print(summary_line(res))
    return EXIT_OK


# -- data ----------------------------------------------------------------------------------------------------
def add_data_arguments(d: argparse.ArgumentParser) -> None:
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="{check,synth,download,convert}")
    c = dsub.add_parser("check", help="validate a data set folder and print its statistics")
    c.add_argument("name", help="data set folder name under the data root")
    arguments.add_data_dir(c)
    s = dsub.add_parser("synth", help="write the embedded synthetic data set")
    s.add_argument("--out", required=True, help="folder to create; its name is the data set name (e.g. data/synthetic)")
    arguments.add_seed(s, 0, "generator seed (default 0)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a generator setting, e.g. --set n_users=500")
    g = dsub.add_parser("download", help="download an Amazon set from MMRec's Google Drive folder")
    g.add_argument("name", type=str.lower, choices=DOWNLOADABLE, help="the data set")
    arguments.add_data_dir(g)
    v = dsub.add_parser("convert", help="rebuild a data set folder from files fetched by hand "
                                        "(tiktok: the DiffMM release's Datasets/tiktok/)")
    v.add_argument("name", type=str.lower, choices=("tiktok",), help="the data set to rebuild")
    v.add_argument("--src", required=True, help="folder holding the release files (trnMat.pkl, valMat.pkl, "
                                                "tstMat.pkl, image_feat.npy, audio_feat.npy)")
    arguments.add_data_dir(v)


def cmd_data(args: argparse.Namespace) -> int:
    from ..core import config as cfgmod
    from ..core.paths import data_root, data_root_source
    from ..data import check_dataset, format_log

    if args.data_command == "check":
        ds = check_dataset(args.name, data_root(args.data_dir), data_root_source(args.data_dir))
        print(format_log(ds))
        print(f"{ds.path}: OK")
    elif args.data_command == "synth":
        from ..data.synth import SynthConfig, write

        scfg = SynthConfig(seed=args.seed)
        cfgmod.apply([scfg], cfgmod.parse_overrides(args.overrides))
        out = write(args.out, scfg)
        ds = check_dataset(out.name, out.parent)
        print(format_log(ds))
        print(f"wrote {out}")
    elif args.data_command == "download":
        from ..data.download import download

        out = download(args.name, data_root(args.data_dir))
        print(f"installed {out}")
    elif args.data_command == "convert":
        from ..data.convert import main as convert_main

        return convert_main(args)
    return EXIT_OK


# -- plan and run-all (declared here, light; executed by r2mr.cli.plan_commands) ------------------------------
RUN_ALL_DESCRIPTION = ("Validate the options, execute the run plan's missing training runs, then notebooks/NN_*.ipynb "
                       "in order with papermill; executed copies go to results/executed/ once all succeed, tables to "
                       "results/, figures to figures/.")
PLAN_DESCRIPTION = ("Print the training runs that run-all needs (data set, model, overrides, seed, purpose), which "
                    "are already in the run store, and an estimate of the work left; trains nothing.")


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``plan`` and ``run-all``."""
    p.add_argument("--datasets", help="comma-separated data sets, or auto (default: every set under the data root and "
                                      "the embedded synthetic set)")
    arguments.add_data_dir(p)
    arguments.add_device(p)
    p.add_argument("--seeds", help="comma-separated seeds, 0 <= seed < 2^32, or auto (default auto: "
                                   "r2mr.runs.plan.seeds_for, 5 per main row on synthetic and TikTok, else 3; "
                                   "--smoke: 999)")
    arguments.add_epochs(p, "per training run (default: the scale's: quick 3 per tuning point and 5 per other "
                           "run, r2mr.runs.plan.EPOCH_CAPS; converged a limit that never binds; full the model's "
                           "own; early stopping applies below the limit)")
    p.add_argument("--scale", choices=("quick", "full", "converged"),
                   help="converged (default): the evidence (R2MR at the quick size, every run early-stopped on "
                        "validation with an epoch limit that never binds; runs in the evidence archive are read); "
                        "quick: the tutorial, not evidence (R2MR at a reduced size, epochs capped at 3/5; the "
                        "--smoke scale); full: the paper's sizes, each model's own epoch limit")
    found = sorted({p.name.split("_")[0] for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
                   or {"01", "02", "03", "04"})  # an installed package: the plan's notebooks
    p.add_argument("--notebooks", help=f"comma-separated notebook prefixes, of {{{','.join(found)}}} (default: all)")


def add_run_all_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--smoke", action="store_true",
                   help="CI-sized run: synthetic data, 2 epochs, seed 999, quick scale; outputs in scratch/smoke/")
    add_plan_arguments(r)
    arguments.add_restart(r, "recompute stored training runs instead of reusing them")
    r.add_argument("--retrain", dest="restart", action="store_true",
                   help="the same as --restart: retrain here every planned run, also those in the evidence archive")
    r.add_argument("--train-only", action="store_true",
                   help="train the plan's missing runs, then stop (no notebooks): how a campaign is run")
    r.add_argument("--no-train", action="store_true",
                   help="train nothing: read every run from the store and the evidence archive; a run in neither "
                        "is a 'not run' row (how the committed tables are regenerated while a campaign is unfinished)")
    r.add_argument("--jobs", type=arguments.positive_int,
                   help="training runs at once on this machine, each with cores/N torch threads (default: the "
                        "cores available on a CPU, one thread per run; 1 on a GPU)")
    r.add_argument("--ray", metavar="ADDRESS",
                   help="execute the runs as Ray tasks: a cluster address, auto (the "
                        "cluster started with `ray start`) or local (pip install -e .[ray])")
    r.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="with --ray: fraction of a GPU per run, e.g. 0.166 for six runs per GPU (default 0)")
    r.add_argument("--cpus-per-run", type=arguments.positive_int, default=1,
                   help="with --ray: CPUs (and torch threads) per run (default 1)")


# -- the table of commands -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def lazy(module: str, attr: str) -> Callable[..., Any]:
    """``module.attr``, imported when first called (for commands that live in other modules)."""
    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args)
    return call


COMMANDS: tuple[Command, ...] = (
    Command("train", "train and evaluate one model on one data set", add_train_arguments, cmd_train),
    Command("data", "check, generate or download data sets", add_data_arguments, cmd_data),
    Command("plan", "print the training runs run-all needs, which are stored, and the work left",
            add_plan_arguments, lazy("r2mr.cli.plan_commands", "plan_main"), PLAN_DESCRIPTION),
    Command("run-all", "execute the plan's missing runs, then the notebooks (what run_all.sh runs)",
            add_run_all_arguments, lazy("r2mr.cli.plan_commands", "run_all_main"), RUN_ALL_DESCRIPTION),
    Command("archive", "add, export, import, verify or list the runs of the evidence archive (results/evidence)",
            lazy("r2mr.cli.archive_commands", "add_arguments"), lazy("r2mr.cli.archive_commands", "main")),
)


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(c.name for c in COMMANDS)
    parser = Parser(prog="python -m r2mr", description=f"r2mr {__version__}: reproduce R2MR (KDD 2025). "
                    f"Commands: {names}. Exit status: 0 ok, 2 bad input, 3 a run or notebook failed, "
                    f"130 interrupted.")
    parser.add_argument("--version", action="version", version=f"r2mr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(c.name for c in COMMANDS) + "}")
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help, description=c.description or c.help)
        c.add_arguments(p)
        p.set_defaults(run=c.run)
    return parser


def exit_status(exc: BaseException) -> int:
    """2 for bad input, 3 for a failed run or notebook, 130 for an interruption."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    pipeline = sys.modules.get("r2mr.cli.pipeline")  # NotebookFailed can only come from a loaded pipeline
    if isinstance(exc, TrainingError) or (pipeline is not None and isinstance(exc, pipeline.NotebookFailed)):
        return EXIT_RUN_FAILED
    return EXIT_BAD_INPUT


def _stop_on_sigterm(signum: int, frame: Any) -> NoReturn:
    """``kill PID`` stops like Ctrl-C: the plan's workers are stopped and joined, finished runs are kept, and the
    same command resumes (SIGTERM's default action would end this process alone and orphan the workers)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    threads.passive_wait()  # before any torch import: idle OpenMP threads must not spin (r2mr.core.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return _run(args)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Run the command; an error is one line and an exit status (:func:`exit_status`)."""
    try:
        return args.run(args)
    except R2MRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_status(exc)
    except OSError as exc:  # a write outside the atomic writers (a log line) on a full or read-only disk
        if exc.errno not in WRITE_ERRNOS:
            raise
        from ..core.atomic_io import write_failed

        print(f"error: {write_failed(exc.filename or '?', exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        why = str(exc) or "rerun the same command to continue (finished epochs and runs are kept)"
        print(f"interrupted: {why}", file=sys.stderr, flush=True)
        executors = sys.modules.get("r2mr.runs.executors")  # Interrupted: the plan's workers are stopped and joined
        stopped = executors is not None and isinstance(exc, executors.Interrupted)
        if args.command == "run-all" and not stopped:  # skip teardown: no stray asyncio tracebacks of the kernels
            sys.stdout.flush()
            os._exit(exit_status(exc))
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
