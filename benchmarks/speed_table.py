"""Print the README's CPU speed tables (markdown) from the JSON files in results/benchmarks/.

Reads profile_r2mr_{before,after}.json, every speedup_cpu*.json (with the per-step split into RNG, sparse
products and the rest where the benchmark recorded it) and
baselines_cpu.json; every figure is labelled with the machine's load average at the time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def profile_table() -> list[str]:
    before, after = load("profile_r2mr_before.json"), load("profile_r2mr_after.json")
    if not (before and after):
        return []
    lines = [f"R2MR training step, torch.profiler, 1 thread (before: {before['commit']}, load {before['loadavg'][0]}; "
             f"after: {after['commit']}, load {after['loadavg'][0]}):", "",
             "| scale, size | aten ops/step before → after | top-level computing ops before → after | "
             "ms/step before → after | top operators after (self ms) |",
             "|---|---|---|---|---|"]
    for b, a in zip(before["rows"], after["rows"]):
        top = ", ".join(f"{o['op'][6:]} {o['self_ms_per_step']:.0f}" for o in a["operators"][:3])
        key = "top_level_compute_ops_per_step"
        launches = f"{b[key]:.0f} → {a[key]:.0f}" if key in a and key in b else "–"
        ms = f"{b['wall_ms_per_step_profiled']:.0f} → {a['wall_ms_per_step_profiled']:.0f}"
        lines.append(f"| {a['scale']}, {a['size']} | {b['aten_ops_per_step']:.0f} → {a['aten_ops_per_step']:.0f} | "
                     f"{launches} | {ms} | {top} |")
    return lines


def speedup_lines() -> list[str]:
    out = []
    for path in sorted(RESULTS.glob("speedup_cpu*.json")):
        r = load(path.name)
        if r:
            m = r["median"]
            out.append(f"- {r['scale']} quick epoch, {r['threads']} thread(s), {r['reps']} alternating runs "
                       f"({r['old_commit']} vs {r['new_commit']}, load {r['loadavg_before'][0]} → "
                       f"{r['loadavg_after'][0]}): median {m['old']['wall_s_per_epoch']:.0f} s → "
                       f"{m['new']['wall_s_per_epoch']:.0f} s wall (×{r['ratio_wall']:.2f}), CPU time "
                       f"×{r['ratio_cpu']:.2f}"
                       + (f"; fastest runs ×{r['ratio_wall_best']:.2f}" if "best" in r else "")
                       + (f"; per-repetition ratios median ×{r['ratio_wall_pairs_median']:.2f} (×"
                          f"{min(r['ratio_wall_pairs']):.2f} to ×{max(r['ratio_wall_pairs']):.2f})"
                          if "ratio_wall_pairs" in r else ""))
            if "ceiling" in r:
                out.append(ceiling_line(r))
    return out


def ceiling_line(r: dict) -> str:
    """Where the step's time goes (profiled, old and new) and the most that keeping RNG and sparse products allows."""
    q = r["profiled_ms_per_step"]
    parts = "; ".join(f"{n} {q[n]['step']:.0f} ms = RNG {q[n]['rng']:.0f} + sparse products {q[n]['sparse']:.0f} + "
                      f"other {q[n]['other']:.0f}" for n in ("old", "new"))
    return (f"  - per step under torch.profiler: {parts}. Ceiling: old step {r['old_ms_per_step']:.0f} ms / new "
            f"RNG + sparse {r['fixed_ms_per_step']:.0f} ms = ×{r['ceiling']:.2f} (goal ×{r['goal']:.0f})")


def baselines_table() -> list[str]:
    r = load("baselines_cpu.json")
    if not r:
        return []
    lines = [f"Baselines on TikTok, CPU 1 thread, median of {r['epochs']} epochs (load {r.get('loadavg', ['?'])[0]}):",
             "", "| model | s/epoch | × LightGCN |", "|---|---|---|"]
    lines += [f"| {x['model']} | {x['seconds_per_epoch']:.2f} | {x['ratio_to_lightgcn']:.2f} |" for x in r["rows"]]
    return lines


def main() -> int:
    print("\n".join(profile_table() + [""] + speedup_lines() + [""] + baselines_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
