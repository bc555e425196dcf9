"""Recompute a seed-level significance table from the committed evidence archive alone.

A table written by :func:`table_from_runs` (:func:`r2mr.report.inference.seed_table` plus, per row, the
configuration ids and seeds of A and B, the metric, the selection rule and the bootstrap settings) can be
recomputed by anyone holding the archive (``results/evidence/``, :mod:`r2mr.runs.archive`): :func:`recompute`
reads every archived run, groups the runs by configuration (:func:`config_id`: the model, the data set and the
resolved config without the seed), keeps the seeds the table names (a configuration selected by tuning also
has its tuning seed in the archive), rebuilds each arm's per-seed metrics from the records and its per-user
metrics from the archived arrays, and recomputes every p-value and interval; :func:`check` compares them with
the file and :func:`print_table` prints them. From a shell::

    python -c "from r2mr.report import recompute; recompute.print_table('results/03_main_results/seed_tests.csv')"

The per-user arrays are archived as float16; the store reads them back through the archive, so a table made
from the store after a fresh clone and the recomputed one agree (the test checks it to 1e-9).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..runs import archive, store
from . import inference
from .significance import RunSet, run_set

RULE_FIELD = {"by_valid": "test", "by_test": "test_selected_by_test"}
SETTINGS = ("metric", "rule", "design asked", "n boot", "boot seed")  # columns a recompute needs
KEYS = ("A config", "B config", "A seeds", "B seeds")


def config_id(model: str, dataset: str, config: Mapping[str, Any]) -> str:
    """12 hex digits naming one configuration (every seed of it): sha256 of the model, the data set and the
    resolved config without ``seed``."""
    body = {"model": model.lower(), "dataset": dataset, "config": {k: v for k, v in config.items() if k != "seed"}}
    return hashlib.sha256(store.canonical(body).encode()).hexdigest()[:12]


def record_id(record: Mapping[str, Any]) -> str:
    """:func:`config_id` of a store or archive record."""
    return config_id(record["model"], record["dataset"], record["config"])


# ---- run sets from the archive -------------------------------------------------------------------------------

def _per_user(entry: archive.Entry, rule: str, metric: str) -> pd.Series:
    """The entry's per-user test ``metric`` at the epoch of ``rule`` (index: user id); empty if not archived."""
    test = archive.per_user_of(entry).get(rule, {}).get("test", {})
    if metric not in test:
        return pd.Series(dtype=float)
    return pd.Series(np.asarray(test[metric], dtype=float), index=np.asarray(test["users"], dtype=np.int64))


def archived_sets(root: Path | None = None, metric: str = "recall@20", rule: str = "by_valid",
                  wanted: Iterable[str] | None = None, seeds: Mapping[str, Iterable[int]] | None = None,
                  exclude_seeds: Iterable[int] = ()) -> dict[str, RunSet]:
    """``{config id: RunSet}`` over the archive's runs: per seed the record's test ``metric`` under ``rule``,
    per user the archived metric averaged over the seeds (in seed order). Only the ids in ``wanted``, only
    ``seeds[id]`` where given (a configuration can have a tuning seed besides its reporting seeds), never
    ``exclude_seeds``."""
    if rule not in RULE_FIELD:
        raise ConfigError(f"rule '{rule}' is not allowed (allowed: {', '.join(RULE_FIELD)}); fix: use one of them")
    want, drop = (set(wanted) if wanted is not None else None), set(exclude_seeds)
    runs: dict[str, dict[int, tuple[float, pd.Series]]] = {}
    models: dict[str, str] = {}
    for path in archive.entries(root):
        entry = archive.read(path, root or archive.archive_root())
        rec = entry.doc["record"]
        cid, seed = record_id(rec), int(rec["seed"])
        if (want is not None and cid not in want) or seed in drop or (
                seeds is not None and cid in seeds and seed not in set(seeds[cid])):
            continue
        runs.setdefault(cid, {})[seed] = (float(rec[RULE_FIELD[rule]][metric]), _per_user(entry, rule, metric))
        models[cid] = rec["model"]
    return {cid: RunSet({s: by_seed[s][0] for s in sorted(by_seed)},
                        _mean_over_seeds([by_seed[s][1] for s in sorted(by_seed)]), models[cid])
            for cid, by_seed in runs.items()}


def _mean_over_seeds(parts: Sequence[pd.Series]) -> pd.Series:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts).groupby(level=0).mean().sort_index() if parts else pd.Series(dtype=float)


def archived_records(root: Path | None = None, wanted: Iterable[str] | None = None
                     ) -> dict[str, list[dict[str, Any]]]:
    """``{config id: [record, ...]}`` (records in seed order) of the archived runs, e.g. for
    :mod:`r2mr.curves`; only the ids in ``wanted`` if given."""
    want = set(wanted) if wanted is not None else None
    out: dict[str, list[dict[str, Any]]] = {}
    for path in archive.entries(root):
        rec = archive.read(path, root or archive.archive_root()).doc["record"]
        cid = record_id(rec)
        if want is None or cid in want:
            out.setdefault(cid, []).append(rec)
    return {cid: sorted(recs, key=lambda r: int(r["seed"])) for cid, recs in out.items()}


# ---- writing a table, recomputing it -------------------------------------------------------------------------

def table_from_runs(groups: Mapping[str, Sequence[tuple[Mapping[str, Any], str | Path]]],
                    pairs: Sequence[tuple[str, str]], metric: str = "recall@20", rule: str = "by_valid",
                    design: str = "auto", n_boot: int = inference.N_BOOT, boot_seed: int = 0) -> pd.DataFrame:
    """:func:`r2mr.report.inference.seed_table` of stored runs (``groups``: label -> ``[(result, run folder)]``, one
    configuration per label) with the columns :func:`recompute` needs (configuration ids, seeds, settings)."""
    ids = {}
    for label, runs in groups.items():
        found = {record_id(res) for res, _ in runs}
        if len(found) != 1:
            raise ConfigError(f"seed table: label '{label}' holds {len(found)} configurations; fix: give one "
                              f"configuration (its seeds) per label")
        ids[label] = found.pop()
    ordered = {label: sorted(runs, key=lambda r: int(r[0]["seed"])) for label, runs in groups.items()}
    sets = {label: _sorted_users(run_set(runs, metric, rule)) for label, runs in ordered.items()}
    table = inference.seed_table(sets, pairs, design, n_boot, boot_seed)
    return _annotate(table, ids, sets, metric, rule, design, n_boot, boot_seed)


def _sorted_users(rs: RunSet) -> RunSet:
    return RunSet(rs.seeds, rs.users.sort_index(), rs.model)


def _annotate(table: pd.DataFrame, ids: Mapping[str, str], sets: Mapping[str, RunSet], metric: str, rule: str,
              design: str, n_boot: int, boot_seed: int) -> pd.DataFrame:
    out = table.copy()
    out.insert(0, "A config", [ids[a] for a, _ in out.index])
    out.insert(1, "B config", [ids[b] for _, b in out.index])
    out.insert(2, "A seeds", [_seed_list(sets[a]) for a, _ in out.index])
    out.insert(3, "B seeds", [_seed_list(sets[b]) for _, b in out.index])
    for col, value in zip(SETTINGS, (metric, rule, design, n_boot, boot_seed)):
        out[col] = value
    return out


def _seed_list(rs: RunSet) -> str:
    return " ".join(str(s) for s in sorted(rs.seeds))


def _parse_seeds(text: object) -> list[int]:
    return [int(x) for x in str(text).split()]


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a :func:`table_from_runs` table as CSV (floats at full precision), atomically."""
    from ..core.atomic_io import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by :func:`write_table` (index A, B); a file without the needed columns is an error."""
    try:
        table = pd.read_csv(path, index_col=["A", "B"], dtype={k: str for k in KEYS})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable seed table ({str(exc).splitlines()[0][:100]}); fix: write it "
                          f"with r2mr.recompute.write_table") from None
    missing = [c for c in (*KEYS, *SETTINGS) if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: no column(s) {', '.join(missing)}; fix: write it with "
                          f"r2mr.recompute.write_table (a table_from_runs table)")
    return table


def recompute(path: str | Path, root: Path | None = None) -> pd.DataFrame:
    """The table at ``path`` recomputed from the archive at ``root`` (default: the repository's)."""
    table = read_table(path)
    settings = table[list(SETTINGS)].drop_duplicates()
    if len(settings) != 1:
        raise ConfigError(f"{path}: rows with different settings ({', '.join(SETTINGS)}); fix: one table per "
                          f"metric and rule")
    metric, rule, design, n_boot, boot_seed = settings.iloc[0]
    ids, seeds = {}, {}
    for side in ("A", "B"):
        for label, cid, seed_text in zip(table.index.get_level_values(side), table[f"{side} config"],
                                         table[f"{side} seeds"]):
            ids[label], seeds[cid] = cid, _parse_seeds(seed_text)
    found = archived_sets(root, metric, rule, ids.values(), seeds)
    absent = sorted(label for label, cid in ids.items() if cid not in found)
    if absent:
        raise ConfigError(f"{path}: no archived runs for {', '.join(absent)}; fix: import the campaign's runs "
                          f"(`python -m r2mr archive import FILE`) or point {archive.ARCHIVE_ENV} at the archive")
    sets = {label: found[cid] for label, cid in ids.items()}
    short = [label for label, cid in ids.items() if sorted(sets[label].seeds) != seeds[cid]]
    if short:
        raise ConfigError(f"{path}: the archive lacks seeds of {', '.join(short)}; fix: import the campaign's runs "
                          f"(`python -m r2mr archive import FILE`)")
    fresh = inference.seed_table(sets, list(table.index), str(design), int(n_boot), int(boot_seed))
    return _annotate(fresh, ids, sets, metric, rule, str(design), int(n_boot), int(boot_seed))


def check(path: str | Path, root: Path | None = None, rtol: float = 1e-9) -> float:
    """Recompute the table at ``path`` and compare every number with the file; return the largest relative
    deviation. A deviation above ``rtol`` (or a text cell that differs) is a ConfigError naming the cell."""
    written, fresh = read_table(path), recompute(path, root)
    worst = 0.0
    for col in written.columns:
        for idx in written.index:
            a, b = written.at[idx, col], fresh.at[idx, col]
            if isinstance(a, (int, float, np.number)) and not isinstance(a, bool):
                a, b = float(a), float(b)
                if np.isnan(a) and np.isnan(b):
                    continue
                dev = abs(a - b) / max(abs(a), abs(b), 1e-300)
                worst = max(worst, dev)
                if not dev <= rtol:
                    raise ConfigError(f"{path}: {col} of {idx[0]} vs {idx[1]} reads {a!r}, the archive gives {b!r}")
            elif str(a) != str(b):
                raise ConfigError(f"{path}: {col} of {idx[0]} vs {idx[1]} reads {a!r}, the archive gives {b!r}")
    return worst


PRINTED = ("design", "n A", "n B", "diff", "diff lo", "diff hi", "p t-test", "p t-test (Holm)", "sig", "rel diff",
           "rel lo", "rel hi", "MDE rel", "MDE rel (Holm first step)", inference.WILCOXON)


def print_table(path: str | Path, root: Path | None = None) -> pd.DataFrame:
    """Recompute the table at ``path`` from the archive, print its p-values and intervals, and return it."""
    fresh = recompute(path, root)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(fresh[[c for c in PRINTED if c in fresh.columns]])
    return fresh
