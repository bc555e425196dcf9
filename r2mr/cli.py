"""Command line: ``python -m r2mr {train, data} ...`` (the only place that parses arguments)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import config as cfgmod
from .errors import R2MRError

log = logging.getLogger("r2mr")


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data root holding <name>/ folders (default: $R2MR_DATA_DIR, else ./data)")


def build_parser() -> argparse.ArgumentParser:
    from .models import MODELS

    parser = argparse.ArgumentParser(prog="python -m r2mr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate one model on one data set")
    t.add_argument("--model", required=True, help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--dataset", required=True, help="data set folder name under the data root")
    _add_data_dir(t)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    t.add_argument("--seed", type=int, default=None, help="random seed (default 999)")
    t.add_argument("--max-epochs", type=int, default=None, help="epoch limit (default: the model's)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model or training config key (repeatable), e.g. --set n_layers=3")
    t.add_argument("--config", help="YAML file of config keys (applied before --set)")
    t.add_argument("--out", help="also write the result JSON here")
    t.add_argument("--run-dir", help="checkpoint/log folder (default runs/<dataset>/<model>-<key>-seed<N>)")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint or result and start over")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")

    d = sub.add_parser("data", help="check, generate or download data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="validate a data set folder and print its statistics")
    c.add_argument("name")
    _add_data_dir(c)
    s = dsub.add_parser("synth", help="write the embedded synthetic data set")
    s.add_argument("--out", required=True, help="folder to create; its name is the data set name (e.g. data/synthetic)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a generator setting, e.g. --set n_users=500")
    g = dsub.add_parser("download", help="download an Amazon set (baby, sports, clothing) from MMRec's Google Drive")
    g.add_argument("name")
    _add_data_dir(g)

    from .plan_cli import add_plan_arguments, add_run_all_arguments

    r = sub.add_parser("run-all", help="execute the run plan's missing runs, then the notebooks (what run_all.sh runs)",
                       description="Validate the options, execute the missing training runs of the plan, then "
                                   "notebooks/NN_*.ipynb in order; executed copies go to results/executed/ once all "
                                   "succeed, tables to results/, figures to figures/.")
    r.add_argument("--smoke", action="store_true",
                   help="CI-sized run: synthetic data, 2 epochs, seed 999, quick scale; outputs in scratch/smoke/")
    add_plan_arguments(r)
    add_run_all_arguments(r)
    r.add_argument("--force", action="store_true", help="recompute cached training runs")
    pl = sub.add_parser("plan", help="print the training runs run-all needs, which are stored, and the work left")
    add_plan_arguments(pl)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import train
    from .results import write_json
    from .train import summary_line

    overrides = cfgmod.load_yaml(args.config) if args.config else {}
    overrides.update(cfgmod.parse_overrides(args.overrides))
    res = train(args.model, args.dataset, data_dir=args.data_dir, overrides=overrides, device=args.device,
                seed=args.seed, max_epochs=args.max_epochs, run_dir=args.run_dir, resume=not args.restart,
                progress=not args.no_progress)
    if args.out:
        write_json(args.out, res)
    print(summary_line(res))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import check_dataset, format_log
    from .paths import data_root, data_root_source

    if args.data_command == "check":
        ds = check_dataset(args.name, data_root(args.data_dir), data_root_source(args.data_dir))
        print(format_log(ds))
        print(f"{ds.path}: OK")
    elif args.data_command == "synth":
        from .data.synth import SynthConfig, write

        scfg = SynthConfig(seed=args.seed)
        cfgmod.apply([scfg], cfgmod.parse_overrides(args.overrides))
        out = write(args.out, scfg)
        ds = check_dataset(out.name, out.parent)
        print(format_log(ds))
        print(f"wrote {out}")
    elif args.data_command == "download":
        from .data.download import download

        out = download(args.name, data_root(args.data_dir))
        print(f"installed {out}")
    return 0


def cmd_run_all(args: argparse.Namespace) -> int:
    from .plan_cli import run_all_main

    return run_all_main(args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run-all":
            return cmd_run_all(args)
        if args.command == "plan":
            from .plan_cli import plan_main

            return plan_main(args)
        return cmd_train(args) if args.command == "train" else cmd_data(args)
    except R2MRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch", file=sys.stderr, flush=True)
        if args.command == "run-all":  # skip interpreter teardown: no stray asyncio tracebacks of the kernels
            sys.stdout.flush()
            os._exit(130)
        return 130


if __name__ == "__main__":
    sys.exit(main())
