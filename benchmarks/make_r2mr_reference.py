"""Write the frozen R2MR reference of tests/test_r2mr_speed.py from a chosen checkout (``--repo``).

Builds the tests' small synthetic set (tests.conftest.SMALL), then for each case (official and paper
variants) records (a) the loss and the sum and absolute sum of every parameter gradient after one
forward/backward on the first batch, and (b) a fixed-seed training run (per-epoch summed loss, valid and
test metrics, best epoch). The speed work must leave these unchanged up to float summation order.

    python benchmarks/make_r2mr_reference.py --repo /tmp/r2mr-before --out tests/fixtures/r2mr_reference.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

TRAIN = {"batch_size": 512, "rewrite_every": 2, "rw_first_epochs": 2, "rw_epochs": 1, "rw_hidden": "[16, 32]",
         "rw_latent": 16, "rw_codebook": 32, "rw_code_dim": 4, "rw_disc_hidden": "[8, 4]", "rw_batch": 32}
CASES = {"official": {}, "paper": {"variant": "paper"},
         "faithful": {"leak_disc_grad": True, "freeze_after_first_rewrite": True, "classes_from_last_batch": True}}
EPOCHS = 6


def one_step(ds, overrides: dict[str, Any]) -> dict[str, Any]:
    from graphs import trainer_api

    make_configs, Trainer, seed_everything = trainer_api()

    cls, mcfg, tcfg = make_configs("r2mr", {**TRAIN, **overrides}, max_epochs=1)
    seed_everything(tcfg.seed)
    model = cls(ds, mcfg)
    trainer = Trainer(model, ds, tcfg, "cpu", None, progress=False)
    model.train()
    loss = model.loss(next(iter(trainer.sampler)))
    loss.backward()
    grads = {n: [float(p.grad.sum()), float(p.grad.abs().sum())] for n, p in model.named_parameters()
             if p.grad is not None}
    return {"loss": loss.item(), "grads": grads}


def run(ds, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    from graphs import trainer_api

    make_configs, Trainer, seed_everything = trainer_api()

    cls, mcfg, tcfg = make_configs("r2mr", {**TRAIN, **overrides}, max_epochs=EPOCHS)
    seed_everything(tcfg.seed)
    res = Trainer(cls(ds, mcfg), ds, tcfg, "cpu", None, progress=False).fit()
    keep = ("epoch", "loss", "valid", "test")
    return {"best_epoch": res["best_epoch"], "history": [{k: h[k] for k in keep} for h in res["history"]]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    repo = Path(a.repo).resolve()
    sys.path.insert(0, str(repo))
    sys.path.insert(1, str(HERE))
    import torch

    try:
        from r2mr.core.atomic_io import write_json
    except ImportError:  # a checkout from before the layered packages
        from r2mr.results import write_json
    from r2mr.data import load_dataset
    from r2mr.data.synth import SynthConfig, write
    from tests.conftest import SMALL

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "small", SynthConfig(**SMALL))
        ds = load_dataset("small", tmp)
        cases = {name: {"overrides": over, "one_step": one_step(ds, over), "run": run(ds, Path(tmp), over)}
                 for name, over in CASES.items()}
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    write_json(a.out, {"provenance": {"commit": commit, "torch": torch.__version__, "threads": 1,
                                      "script": "benchmarks/make_r2mr_reference.py", "data": "tests.conftest.SMALL",
                                      "epochs": EPOCHS, "train_overrides": TRAIN},
                       "cases": cases})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
