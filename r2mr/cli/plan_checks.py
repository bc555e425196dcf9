"""The lines ``run-all`` (:mod:`r2mr.cli.plan_commands`) says about the plan's stored runs: how many come from
the evidence archive; and those that stop it: stored records that cannot be read, before anything trains;
failed runs, after a stage trained (one line per failed run, exit status 3)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from ..core.errors import ConfigError, TrainingError
from ..runs.outcome import Outcome
from ..runs.plan import PlannedRun


def unreadable(planned: Sequence[PlannedRun], status: Sequence[tuple[str, Any]]) -> str:
    """One line on the stored records that cannot be used (empty if none), with the fix that recomputes only
    those runs."""
    bad = [st.removeprefix("unreadable: ") for _, (st, _) in zip(planned, status) if st.startswith("unreadable")]
    if not bad:
        return ""
    folders = sorted({str(os.path.dirname(b.split(": ")[0])) for b in bad})
    return (f"{len(bad)} stored run(s) cannot be read, first: {bad[0]}; fix: move their run folder(s) aside "
            f"({', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''}) and rerun: only those runs are "
            f"recomputed (--restart would recompute every run)")


def stop_if_unreadable(planned: Sequence[PlannedRun], status: Sequence[tuple[str, Any]], restart: float) -> None:
    """The :func:`unreadable` line as a ConfigError (exit status 2), unless ``--restart`` recomputes them."""
    if unreadable(planned, status) and not restart:
        raise ConfigError(unreadable(planned, status))


def stop_if_failed(outcomes: Sequence[Outcome], attempted: int) -> None:
    """Raise TrainingError (its message the first failed run) after one stderr line per other failed run."""
    failed = [o for o in outcomes if o.status.startswith("failed")]
    if not failed:
        return
    for o in failed[1:]:
        print(f"{o.run.spec.label} on {o.run.dataset}, seed {o.run.seed}: {o.status}", file=sys.stderr)
    raise TrainingError(f"{len(failed)} of {attempted} runs failed, first: {failed[0].run.spec.label} on "
                        f"{failed[0].run.dataset}, seed {failed[0].run.seed}: {failed[0].status}")


def archive_line(status: Sequence[tuple[str, Any]], retrained: float) -> str:
    """One line: how many of the plan's runs come from the evidence archive, and how to retrain them here."""
    n = sum(st == "archived" for st, _ in status)
    if retrained:
        return f"--retrain: {n} runs of the evidence archive were retrained here, not read"
    return (f"{n} runs read from the evidence archive (results/evidence/), not retrained; to retrain them here: "
            f"the same command with --retrain (choose with --datasets and --notebooks)")
