"""``python -m r2mr archive``: add finished runs from a store, export a subset to one file, import such a file,
verify the whole archive, and list what it holds (:mod:`r2mr.runs.archive` is the format).

* ``add [--runs DIR] [--datasets a,b] [--models m,n]``: every finished run of the store (``$R2MR_RUNS_DIR`` or
  ``runs/``) not yet archived; runs still training (locked) and unfinished runs are skipped.
* ``export FILE [--datasets] [--models]``: the archived runs as one zip file (each member an entry, stored
  as written), e.g. to bring a campaign run on another machine back; refused over ``--max-mib`` (16).
* ``import FILE``: every member validated (digest, key, the member's name equals its run), then written; a
  run already archived with other content is refused, never replaced.
* ``verify``: every entry validated; prints the count and the size; exit 2 on the first bad entry.
* ``list``: counts per data set and model, and the archive's size.

No torch import unless an entry is added from a store (the artifacts are torch files).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections import Counter
from pathlib import Path

from ..core.config import parse_list
from ..core.errors import ConfigError
from ..core.paths import display_path, runs_root
from ..runs import archive, store

MAX_EXPORT_MIB = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archive", help="the archive folder (default: $R2MR_ARCHIVE_DIR, else results/evidence)")
    sub = p.add_subparsers(dest="action", required=True, metavar="{add,export,import,verify,list}")
    a = sub.add_parser("add", help="archive the finished runs of a store")
    a.add_argument("--runs", help="the store (default: $R2MR_RUNS_DIR, else runs/)")
    e = sub.add_parser("export", help="write archived runs to one zip file")
    e.add_argument("file", help="the zip file to write (must not exist)")
    e.add_argument("--max-mib", type=float, default=MAX_EXPORT_MIB, help="refuse a larger file (default 16)")
    i = sub.add_parser("import", help="validate and add the runs of an exported zip file")
    i.add_argument("file", help="a zip file written by `archive export`")
    for q in (a, e):
        q.add_argument("--datasets", help="comma-separated data sets (default: all)")
        q.add_argument("--models", help="comma-separated models (default: all)")
    sub.add_parser("verify", help="validate every archived run")
    sub.add_parser("list", help="count the archived runs per data set and model")


def _wanted(name: str, datasets: str | None, models: str | None) -> bool:
    """Whether archive-relative ``name`` (``<dataset>/<model>-<key>-seed<N>.npz``) passes the filters."""
    dataset, rest = name.split("/", 1)
    model = rest.split("-", 1)[0]
    return ((not datasets or dataset in parse_list(datasets)) and (not models or model in parse_list(models)))


def add_from_store(runs: Path, root: Path, datasets: str | None = None, models: str | None = None) -> tuple[int, int]:
    """(added, already archived) over the store's finished runs."""
    added = have = 0
    for folder in sorted(p.parent for p in runs.glob(f"*/*/{store.RESULT_FILE}")):
        name = f"{folder.parent.name}/{folder.name}.npz"
        if not _wanted(name, datasets, models):
            continue
        if (root / name).is_file():
            have += 1
            continue
        with store.locked(folder, wait=False) as free:
            if not free:
                continue  # training now: its record is not final
            archive.write(archive.pack(folder), root)
        added += 1
    return added, have


def export(root: Path, out: Path, datasets: str | None, models: str | None, max_mib: float) -> int:
    """Write the selected entries to the zip ``out`` (atomically); the number written."""
    from ..core.atomic_io import atomic_path

    if out.exists():
        raise ConfigError(f"{out}: exists; fix: choose a new file name (export never overwrites)")
    names = [p.relative_to(root).as_posix() for p in archive.entries(root)]
    names = [n for n in names if _wanted(n, datasets, models)]
    size = sum((root / n).stat().st_size for n in names)
    if size > max_mib * 2**20:
        raise ConfigError(f"{out}: the {len(names)} runs take {size / 2**20:.1f} MiB, over --max-mib {max_mib:g}; "
                          f"fix: export per data set (--datasets) or model (--models)")
    with atomic_path(out, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for n in names:
            archive.read(root / n, root)  # never export a bad entry
            zf.write(root / n, n)
    return len(names)


def import_file(path: Path, root: Path) -> tuple[int, int]:
    """(added, already archived) from an exported zip; every member validated before anything is written."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [(m, zf.read(m)) for m in zf.namelist() if not m.endswith("/")]
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a readable zip file ({exc}); fix: export it again with "
                          f"`python -m r2mr archive export`") from None
    checked = [archive.from_bytes(data, f"{path}:{name}", expect=name) for name, data in members]
    added = 0
    for entry in checked:
        if not (root / entry.name).is_file():
            added += 1
        archive.write(entry, root)
    return added, len(checked) - added


def describe(root: Path) -> str:
    """One line per data set with its runs per model, then the total and the size."""
    paths = archive.entries(root)
    per: dict[str, Counter] = {}
    for p in paths:
        per.setdefault(p.parent.name, Counter())[p.name.split("-", 1)[0]] += 1
    lines = [f"{d}: " + ", ".join(f"{m} {n}" for m, n in sorted(c.items())) for d, c in sorted(per.items())]
    size = sum(p.stat().st_size for p in paths)
    return "\n".join([*lines, f"{len(paths)} runs, {size / 2**20:.2f} MiB in {display_path(root)}"])


def main(args: argparse.Namespace) -> int:
    root = Path(args.archive).expanduser() if args.archive else archive.archive_root()
    if args.action == "add":
        runs = Path(args.runs).expanduser() if args.runs else runs_root()
        added, have = add_from_store(runs, root, args.datasets, args.models)
        print(f"added {added} runs from {display_path(runs)} ({have} already archived)")
    elif args.action == "export":
        n = export(root, Path(args.file), args.datasets, args.models, args.max_mib)
        print(f"wrote {n} runs to {args.file}")
    elif args.action == "import":
        added, have = import_file(Path(args.file), root)
        print(f"imported {added} runs from {args.file} ({have} already archived)")
    elif args.action == "verify":
        for p in archive.entries(root):
            archive.read(p, root)
        print("verified: " + describe(root).splitlines()[-1])
    else:
        print(describe(root))
    sys.stdout.flush()
    return 0
