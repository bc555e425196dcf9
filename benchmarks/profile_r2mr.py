"""Profile R2MR's training step on CPU with torch.profiler: operators per step and their self-times.

For each scale (``baby``: the real graph under ``--data-dir``; ``clothing``: a generated graph with the
Clothing counts) and size (``quick``: r2mr.report.QUICK; ``full``: the defaults) it builds R2MR with random
features of the real widths (image 4096, text 384), takes one warm-up step, then profiles ``--steps``
training steps (forward, backward, optimiser step). ``--repo`` chooses which checkout's ``r2mr`` package
is imported, so the same script profiles an older commit (e.g. a ``git worktree`` of it) and this one.
``--model`` profiles another model instead, at its defaults on the real data set(s) named by ``--scales``.

Output: ``<out>.json`` (every operator: calls and self-ms per step; the top 40 also by input shapes) and
``<out>.md`` (the top operators by self time, plus the operator counts per step, our CPU-side proxy for
kernel launches). ``--device cuda``
profiles the step on the GPU and adds the CUDA kernels launched per step and the top kernels by time.
Example::

    python benchmarks/profile_r2mr.py --repo /tmp/r2mr-before --data-dir /path/to/data --label before
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def import_repo(repo: Path) -> None:
    """Put ``repo``'s r2mr package first on the import path (before anything imports r2mr)."""
    sys.path.insert(0, str(repo))
    sys.path.insert(1, str(HERE))


# Operators that launch no kernel on a GPU: views, metadata, allocation, tensor construction, scalar reads.
NO_KERNEL = frozenset("aten::" + n for n in (
    "detach t select view reshape _reshape_alias expand unsqueeze squeeze as_strided slice transpose permute "
    "alias flatten values crow_indices col_indices _values contiguous empty empty_like empty_strided resize_ "
    "lift_fresh to result_type is_nonzero item _local_scalar_dense zeros_like sparse_csr_tensor "
    "sparse_compressed_tensor _sparse_csr_tensor_unsafe _sparse_compressed_tensor_unsafe "
    "_validate_sparse_csr_tensor_args _nnz resolve_conj resolve_neg").split())


def top_level_counts(events: list) -> tuple[int, int]:
    """(top-level aten calls, those of them that compute): calls made by Python or autograd, not from inside
    another aten operator; the second count leaves out NO_KERNEL. Our CPU-side proxy for kernel launches
    (an operator's nested calls, e.g. the copies inside a sparse product, are the same on both sides)."""
    top = [e for e in events if e.name.startswith("aten::")
           and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))]
    return len(top), sum(e.name not in NO_KERNEL for e in top)


def kernel_counts(prof: Any, steps: int) -> dict[str, Any]:
    """On CUDA: kernels launched per step (the profiler's device-side events) and the top kernels by time."""
    from torch.autograd import DeviceType

    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    total: dict[str, list[float]] = {}
    for e in kernels:
        t = total.setdefault(e.name, [0, 0.0])
        t[0] += 1
        t[1] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    top = sorted(total.items(), key=lambda kv: -kv[1][1])[:15]
    return {"cuda_kernels_per_step": len(kernels) / steps,
            "cuda_kernel_ms_per_step": sum(t for _, t in total.values()) / 1e3 / steps,
            "top_kernels": [{"kernel": k[:80], "calls_per_step": n / steps, "ms_per_step": t / 1e3 / steps}
                            for k, (n, t) in top]}


def profile_one(scale: str, size: str, data_dir: str | None, steps: int, device: str = "cpu",
                model_name: str = "r2mr") -> dict[str, Any]:
    import torch
    from graphs import load_scale, r2mr_overrides, trainer_api
    from torch.profiler import ProfilerActivity, profile, record_function

    from r2mr.data import load_dataset
    make_configs, Trainer, seed_everything = trainer_api()

    if model_name == "r2mr":  # random features of the real widths; generated graph for clothing
        ds = load_scale(scale, data_dir)
        cls, mcfg, tcfg = make_configs("r2mr", r2mr_overrides(size))
    else:  # any other model at its defaults for the data set, on the real data with its features
        cls, mcfg, tcfg = make_configs(model_name, dataset=scale)
        ds = load_dataset(scale, data_dir, features=cls.needs_features)
    seed_everything(tcfg.seed)
    model = cls(ds, mcfg)
    dev = torch.device(device)
    trainer = Trainer(model, ds, tcfg, dev, None, progress=False)
    batches = [b.to(dev) for _, b in zip(range(steps + 1), trainer.sampler)]
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model.train()
    on_epoch = getattr(model, "on_epoch_start", None)
    if on_epoch is not None:
        on_epoch(0)

    def step(b) -> None:
        with record_function("phase:forward"):
            loss = model.loss(b)
        trainer.optimizer.zero_grad(set_to_none=True)
        with record_function("phase:backward"):
            loss.backward()
        with record_function("phase:optimizer"):
            trainer.optimizer.step()
    step(batches[0])  # warm-up
    sync()
    t0 = time.perf_counter()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for b in batches[1:]:
            step(b)
        sync()
    wall = (time.perf_counter() - t0) / steps
    ops = [{"op": e.key, "calls_per_step": e.count / steps, "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "total_ms_per_step": e.cpu_time_total / 1e3 / steps}
           for e in prof.key_averages() if e.key.startswith("aten::")]
    ops.sort(key=lambda r: -r["self_ms_per_step"])
    by_shape = [{"op": e.key, "input_shapes": str(e.input_shapes), "calls_per_step": e.count / steps,
                 "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps}
                for e in prof.key_averages(group_by_input_shape=True) if e.key.startswith("aten::")]
    by_shape = sorted(by_shape, key=lambda r: -r["self_ms_per_step"])[:40]
    phases = {e.name.split(":")[1]: [] for e in prof.events() if e.name.startswith("phase:")}
    for e in prof.events():
        if e.name.startswith("phase:"):
            phases[e.name.split(":")[1]].append((e.time_range.start, e.time_range.end))
    per_phase = dict.fromkeys(phases, 0)
    for e in prof.events():
        if e.name.startswith("aten::"):
            for name, spans in phases.items():
                if any(a <= e.time_range.start <= b for a, b in spans):
                    per_phase[name] += 1
                    break
    top, compute = top_level_counts(prof.events())
    return {"model": model_name, "scale": scale, "size": size, "device": str(dev),
            **(kernel_counts(prof, steps) if cuda else {}),
            "users": ds.n_users, "items": ds.n_items, "train_edges": len(ds.train),
            "top_level_ops_per_step": top / steps, "top_level_compute_ops_per_step": compute / steps,
            "steps": steps, "wall_ms_per_step_profiled": 1e3 * wall,
            "aten_ops_per_step": sum(r["calls_per_step"] for r in ops),
            "aten_ops_with_self_time_per_step": sum(r["calls_per_step"] for r in ops if r["self_ms_per_step"] > 0),
            "self_ms_per_step": sum(r["self_ms_per_step"] for r in ops),
            "aten_ops_per_step_by_phase": {k: v / steps for k, v in per_phase.items()}, "operators": ops,
            "operators_by_input_shape": by_shape}


def markdown(res: dict[str, Any], top: int) -> str:
    head = (f"repo commit {res['commit']}, torch {res['torch']}, {res['threads']} thread(s), load average "
            f"{res['loadavg']}. Operator counts are aten calls per training step (forward, backward, "
            "optimiser), nested calls included; the top-level calls that compute (no views, allocations or "
            "metadata; see NO_KERNEL) are the closer CPU-side proxy for kernel launches.")
    where = "CUDA" if any(r.get("device", "cpu").startswith("cuda") for r in res["rows"]) else "CPU"
    names = ", ".join(sorted({r.get("model", "r2mr").upper() for r in res["rows"]}))
    lines = [f"# {names} training step on {where}: torch.profiler ({res['label']})", "", head, ""]
    for r in res["rows"]:
        phases = ", ".join(f"{k} {v:.0f}" for k, v in r.get("aten_ops_per_step_by_phase", {}).items())
        title = (f"## {r.get('model', 'r2mr')}, {r['scale']}, {r['size']} size ({r['users']} users, "
                 f"{r['items']} items, {r['train_edges']} edges)")
        tops = (f"; {r['top_level_ops_per_step']:.0f} top-level, {r['top_level_compute_ops_per_step']:.0f} of them "
                "computing" if "top_level_ops_per_step" in r else "")
        summary = (f"{r['aten_ops_per_step']:.0f} aten ops per step ({phases}{tops}); "
                   f"{r['wall_ms_per_step_profiled']:.0f} "
                   f"ms per step under the profiler; self time {r['self_ms_per_step']:.0f} ms.")
        lines += [title, "", summary, "",
                  "| operator | calls/step | self ms/step |", "|---|---:|---:|"]
        lines += [f"| {o['op']} | {o['calls_per_step']:.0f} | {o['self_ms_per_step']:.2f} |"
                  for o in r["operators"][:top]]
        if "cuda_kernels_per_step" in r:
            lines += ["", f"{r['cuda_kernels_per_step']:.0f} CUDA kernels per step, {r['cuda_kernel_ms_per_step']:.1f} "
                      "ms of kernel time per step.", "", "| kernel | calls/step | ms/step |", "|---|---:|---:|"]
            lines += [f"| {k['kernel']} | {k['calls_per_step']:.0f} | {k['ms_per_step']:.2f} |"
                      for k in r["top_kernels"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", default=str(HERE.parent), help="checkout whose r2mr is profiled (default: this one)")
    p.add_argument("--data-dir", help="data root holding baby/ (for the baby scale)")
    p.add_argument("--scales", default="baby,clothing")
    p.add_argument("--sizes", default="quick,full")
    p.add_argument("--steps", type=int, default=3, help="profiled steps per case (after one warm-up step)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (on cuda also the kernels launched per step)")
    p.add_argument("--model", default="r2mr", help="r2mr (default) or another model, profiled at its defaults on "
                   "the real data set(s) named by --scales (--sizes is then only a label)")
    p.add_argument("--label", default="after", help="name of this profile (before | after)")
    p.add_argument("--top", type=int, default=15, help="operators listed in the markdown table")
    p.add_argument("--out", help="output stem (default results/benchmarks/profile_r2mr_<label>)")
    a = p.parse_args(argv)
    repo = Path(a.repo).resolve()
    import_repo(repo)
    import subprocess

    import torch

    try:
        from r2mr.core.atomic_io import write_json
    except ImportError:  # a checkout from before the layered packages
        from r2mr.results import write_json

    rows = []
    for scale in a.scales.split(","):
        for size in a.sizes.split(","):
            rows.append(profile_one(scale, size, a.data_dir, a.steps, a.device, a.model))
            r = rows[-1]
            print(f"{scale} {size}: {r['aten_ops_per_step']:.0f} ops/step, "
                  f"{r['wall_ms_per_step_profiled']:.0f} ms/step", flush=True)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    res = {"label": a.label, "commit": commit, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "loadavg": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    stem = Path(a.out) if a.out else HERE.parent / "results" / "benchmarks" / f"profile_r2mr_{a.label}"
    write_json(stem.with_suffix(".json"), res)
    text = markdown(res, a.top)
    tmp = stem.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, stem.with_suffix(".md"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
