"""The parameters and row specs of the run plan (:mod:`r2mr.runs.plan` builds the plan from them; notebooks reach
every name here through ``r2mr.runs.plan``).

* Parameters: scales, the seed pool and the declared seeds per data set and purpose (:func:`seeds_for`), the
  epoch caps per run kind and scale (:func:`epoch_cap`) and the parsers of ``--seeds`` and list options.
* Specs (:class:`Spec`, one row family of a table): the quick-scale presets (:data:`QUICK`) and the grids of
  each notebook: :func:`quality_specs` (01), :func:`ablation_specs`, :func:`sensitivity_specs` and
  :func:`eta_specs` (02), :func:`main_specs` (03, 04 at the models' defaults).

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.config import parse_list
from ..core.errors import ConfigError
from ..core.names import SEED_MAX

SCALES = ("quick", "full", "converged")
# The sizes a scale trains R2MR at: converged is the quick size (what a 2-core CPU affords; labelled "quick size"
# in every row) trained to convergence.
SIZE_OF = {"quick": "quick", "full": "full", "converged": "quick"}
AUTO = "auto"  # the seeds spec that means "the declared number per data set and purpose"
DEFAULT_SEEDS = (999, 1, 2, 3, 4)  # the seed pool of an ``auto`` invocation, first ones first
MAIN_SEEDS = {"synthetic": 5, "tiktok": 5}  # main-table seeds per data set (issue 9); others: MAIN_SEEDS_OTHER
MAIN_SEEDS_OTHER = 3
ABLATION_SEEDS = 3  # notebook 02's rows (ablations, controls, sensitivities)
# converged: the paper's ablations (and the full model they are measured against) get the main rows' 5 seeds
PAPER_ABLATION_SEEDS = 5
# converged: tuning points use their own seeds, disjoint from the reporting seeds (no selection on the seeds
# that are reported), one per point (a converged grid costs as much as 6 main rows)
TUNE_SEEDS = (101,)
# converged: data sets whose grids are run; elsewhere each model keeps its published (MMRec) configuration,
# labelled "not tuned here" (LightGCN on Sports is about 45 CPU-minutes a run: a grid would cost 4.5 h)
TUNED_DATASETS = ("synthetic", "tiktok")
# Max epochs per run kind and scale (None: the model's own limit, early stopping on valid Recall@20 either way).
# quick: tuning points 3 epochs, every other run 5, so that the default run_all.sh on the synthetic set fits
# in about a quarter of an hour on 2 CPU cores (a tutorial, not evidence: the cap decides the ranking);
# full: no cap; converged: a limit that never binds (early stopping on validation with patience 20 ends every
# run first; the tables report how often a limit bound). ``--epochs`` replaces them.
CONVERGED_LIMIT = 1000
EPOCH_CAPS: dict[str, dict[str, int | None]] = {"quick": {"tune": 3, "train": 5},
                                                "full": {"tune": None, "train": None},
                                                "converged": {"tune": CONVERGED_LIMIT, "train": CONVERGED_LIMIT}}
SEED_LIMIT = SEED_MAX + 1  # seeds are in [0, SEED_LIMIT)


# ---- parameters ---------------------------------------------------------------------------------------------

def parse_seeds(spec: str | int | Sequence[int], key: str = "--seeds") -> list[int]:
    """``"999,1,2"``, ``999`` or ``[999, 1]`` -> list of ints in [0, 2^32); else a one-line ConfigError."""
    items = [spec] if isinstance(spec, int) else parse_list(spec if isinstance(spec, str) else [str(x) for x in spec])
    seeds = []
    for item in items:
        try:
            seed = int(item)
        except (TypeError, ValueError):
            seed = None
        if seed is None or not 0 <= seed < SEED_LIMIT:
            raise ConfigError(f"{key} '{item}' is not allowed (allowed: integers 0 <= seed < 2^32, comma-separated); "
                              f"fix: e.g. {key} 999,1,2")
        seeds.append(seed)
    if not seeds:
        raise ConfigError(f"{key} is empty; fix: give at least one seed, e.g. {key} 999")
    return seeds


def parse_seed_spec(spec: str | int | Sequence[int] | None) -> list[int] | None:
    """Like :func:`parse_seeds`, but ``"auto"`` (or None) -> None: the declared seeds per data set and purpose."""
    if spec is None or (isinstance(spec, str) and spec.strip() == AUTO):
        return None
    return parse_seeds(spec)


def seeds_for(seeds: Sequence[int] | None, dataset: str, kind: str, tune_seeds: int = 2,
              scale: str = "quick") -> list[int]:
    """The seeds of one row family: ``kind`` is ``main`` (03), ``tune`` (a grid point: ``tune_seeds`` seeds),
    ``ablation`` (01, 02), ``paper`` (the paper's ablations and their base row) or ``first`` (04's timings).
    ``seeds`` None (``auto``) draws from :data:`DEFAULT_SEEDS` (main: :data:`MAIN_SEEDS` of the data set, else
    :data:`MAIN_SEEDS_OTHER`); a given list is used as is. At the converged scale a tuning point takes
    :data:`TUNE_SEEDS` (disjoint from the reporting seeds) and ``paper`` rows :data:`PAPER_ABLATION_SEEDS`."""
    pool = list(DEFAULT_SEEDS) if seeds is None else list(seeds)
    if kind == "tune":
        return list(TUNE_SEEDS) if scale == "converged" and seeds is None else pool[:tune_seeds]
    if kind == "first":
        return pool[:1]
    if seeds is not None:
        return pool
    paper = PAPER_ABLATION_SEEDS if scale == "converged" else ABLATION_SEEDS
    n = {"main": MAIN_SEEDS.get(dataset, MAIN_SEEDS_OTHER), "ablation": ABLATION_SEEDS, "paper": paper}[kind]
    return pool[:n]


def epoch_cap(scale: str, epochs: int | None, kind: str = "train") -> int | None:
    """Max epochs of a run of ``kind`` (``tune`` or ``train``): ``epochs`` if given, else :data:`EPOCH_CAPS`."""
    return epochs if epochs is not None else EPOCH_CAPS[check_scale(scale)][kind]


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ConfigError(f"--scale '{scale}' is not allowed (allowed: {', '.join(SCALES)}); fix: use one of them")
    return scale


# ---- specs: one row family of a table -----------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One row family of a table: a label, the registered model, config overrides and its role."""

    label: str  # row label, e.g. "LightGCN" or "R2MR content control: random features"
    model: str  # registry name
    overrides: tuple[tuple[str, Any], ...] = ()  # config keys applied on top of the model's defaults
    role: str = "model"  # model | control | ablation | sensitivity
    selections: tuple[str, ...] = ("valid",)  # valid and/or test (the official test-selected rule)
    tuning: str = ""  # main rows: tuned | untuned | pending (grid not stored yet); grid points: grid
    point: tuple[tuple[str, Any], ...] = ()  # the tuning-grid point (overrides without the scale preset)

    @classmethod
    def of(cls, label: str, model: str, role: str = "model", selections: Sequence[str] = ("valid",),
           **overrides: Any) -> Spec:
        return cls(label, model, tuple(sorted(overrides.items())), role, tuple(selections))


LABELS = {"bpr": "BPR", "lightgcn": "LightGCN", "vbpr": "VBPR", "lattice": "LATTICE", "freedom": "FREEDOM",
          "bm3": "BM3", "mgcn": "MGCN", "lgmrec": "LGMRec", "smore": "SMORE", "r2mr": "R2MR"}


def label(model: str) -> str:
    """The printed name of a registered model (``lightgcn`` -> ``LightGCN``)."""
    return LABELS.get(model, model)


# Smaller sizes for the quick scale (tutorial and CPU runs); the full scale uses each model's own (published)
# sizes and epoch limits. Models not listed run at their own sizes at both scales. The quick R2MR has d = 64,
# a one-layer 256-wide rewriter with a 256-entry codebook (the paper's 4096 / 16), trained 30 epochs in its
# first round and 10 later, a round every 2 epochs (at most 5), and at most 50 epochs.
QUICK: dict[str, dict[str, Any]] = {
    "r2mr": dict(dim=64, rw_hidden=(256,), rw_latent=256, rw_codebook=256, rw_prompt_dim=32, rw_disc_hidden=(64,),
                 rw_first_epochs=30, rw_epochs=10, rewrite_every=2, max_rounds=5, max_epochs=50),
}


def quick_overrides(model: str, scale: str) -> tuple[str, dict[str, Any]]:
    """(label suffix, overrides) of ``model`` at ``scale``: the quick preset where one exists."""
    check_scale(scale)
    if SIZE_OF[scale] == "quick" and model in QUICK:
        return " (quick size)", dict(QUICK[model])
    return "", {}


def model_spec(model: str, scale: str = "full", role: str = "model", label: str | None = None,
               selections: Sequence[str] | None = None, **overrides: Any) -> Spec:
    """A spec of ``model`` at ``scale`` with extra ``overrides``; R2MR gets both selection protocols."""
    suffix, preset = quick_overrides(model, scale)
    if model == "r2mr" and overrides.get("variant") == "official":
        del overrides["variant"]  # the default: one store entry and one planned run with the main table's R2MR
    sels = selections or (("valid", "test") if model == "r2mr" and role == "model" else ("valid",))
    return Spec.of((label or LABELS.get(model, model)) + suffix, model, role=role, selections=sels,
                   **{**preset, **overrides})


CONTROLS = {"random": "R2MR content control: random features", "frozen": "R2MR content control: frozen features"}

# Notebook 02: the paper's ablations and R2MR's own switches (rw_arch and rw_discriminator are in rewriter.py).
ABLATIONS: list[tuple[str, dict[str, Any]]] = [
    ("full rewriter, official acceptance (s_new > η)", {}),
    ("no Reviewer (s = 1: plain features)", {"use_reviewer": False}),
    ("no Rewriter (no rewrite rounds)", {"max_rounds": 0}),
    ("plain MLP mapping", {"rw_arch": "mlp"}),
    ("autoencoder, no codebook", {"rw_arch": "ae"}),
    # the official discriminator never reaches the generator: this row is the full method again, another
    # random stream; its distance to row 1 is seed noise, not an effect
    ("seed-noise replicate (codebook, no discriminator)", {"rw_discriminator": False}),
    ("paper acceptance (s_new > s_old)", {"accept_rule": "improve"}),
]
# K, the paper's grid. The official model cuts d into K chunks, so K must divide d: the quick d = 64 drops K = 3
PERSPECTIVES = {"full": (1, 2, 3, 4), "quick": (1, 2, 4)}
CODEBOOKS = {"full": (512, 1024, 4096), "quick": (32, 64, 256)}  # quick: the paper's sizes / 16, as its codebook
ETAS = {"quick": (0.4, 0.5, 0.6), "full": (0.3, 0.4, 0.5, 0.6, 0.7)}  # quick: the middle three
for _grid in (PERSPECTIVES, CODEBOOKS, ETAS):
    _grid["converged"] = _grid["quick"]  # converged trains the quick size
# The paper's ablations (w/o Reviewer, w/o Rewriter), the seed-noise replicate and the full model they are
# compared with: at the converged scale they get PAPER_ABLATION_SEEDS seeds
PAPER_ABLATIONS = ("full rewriter, official acceptance (s_new > η)", "no Reviewer (s = 1: plain features)",
                   "no Rewriter (no rewrite rounds)", "seed-noise replicate (codebook, no discriminator)")


def is_paper_ablation(spec: Spec, scale: str) -> bool:
    """Whether ``spec`` is one of :data:`PAPER_ABLATIONS` (its label without the scale's size suffix)."""
    return spec.model == "r2mr" and spec.label.removesuffix(quick_overrides("r2mr", scale)[0]) in PAPER_ABLATIONS


def ablation_specs(scale: str = "full", variant: str = "official") -> list[Spec]:
    """The ablations of notebook 02 (role ``ablation``), then R2MR's content controls (role ``control``)."""
    specs = [model_spec("r2mr", scale, role="ablation", label=text, variant=variant, **kw) for text, kw in ABLATIONS]
    return specs + [model_spec("r2mr", scale, role="control", label=text, variant=variant, content=kind)
                    for kind, text in CONTROLS.items()]


def sensitivity_specs(scale: str = "full", variant: str = "official") -> list[Spec]:
    """R2MR retrained at each number of perspectives K and each codebook size (role ``sensitivity``)."""
    default_codebook = QUICK["r2mr"]["rw_codebook"] if SIZE_OF[scale] == "quick" else CODEBOOKS["full"][-1]
    specs = [model_spec("r2mr", scale, role="sensitivity", label=f"K = {k}", variant=variant, n_perspectives=k)
             for k in PERSPECTIVES[scale]]
    return specs + [model_spec("r2mr", scale, role="sensitivity", label=f"codebook {c}", variant=variant,
                               **({} if c == default_codebook else {"rw_codebook": c})) for c in CODEBOOKS[scale]]


def eta_specs(etas: Sequence[float], scale: str = "full", variant: str = "official") -> list[Spec]:
    """R2MR retrained at each quality threshold η (the default η = 0.5 is the full-rewriter row)."""
    return [model_spec("r2mr", scale, role="ablation", label=f"η = {e:g}", variant=variant,
                       **({} if e == 0.5 else {"eta": float(e)})) for e in etas]


def quality_specs(scale: str = "full", variant: str = "official") -> list[Spec]:
    """Notebook 01: the one R2MR run whose Reviewer scores it reads."""
    return [model_spec("r2mr", scale, variant=variant, selections=("valid",))]


def main_specs(models: str | Sequence[str] = "all", scale: str = "full", controls: bool = True,
               registered: Sequence[str] | None = None) -> list[Spec]:
    """The main table's specs at the models' defaults: every registered model (baselines first, R2MR last),
    then R2MR's content controls (random features of the same shapes; real features kept frozen)."""
    if registered is None:
        from ..models import MODELS

        registered = list(MODELS)
    names = list(registered) if parse_list(models) in ([], ["all"]) else parse_list(models)
    names.sort(key=lambda m: (m == "r2mr", list(LABELS).index(m) if m in LABELS else len(LABELS), m))
    specs = [model_spec(m, scale) for m in names]
    if controls and "r2mr" in names:
        specs += [model_spec("r2mr", scale, role="control", label=text, content=kind)
                  for kind, text in CONTROLS.items()]
    return specs


# Robustness to corrupted modalities (issue 18; notebook 05): these models at their configuration selected on
# the clean set, on each corrupted variant of a data set (r2mr.data.corrupt: a seeded swap of one modality's rows
# among a share of the items). The synthetic set also has its planted corruption (quality.csv): its clean runs
# give the Reviewer's AUC on it; its one swap variant (image, 40%) is the drop test where the truth is known.
ROBUST_MODELS = ("vbpr", "freedom", "bm3", "mgcn", "r2mr")
ROBUSTNESS_VARIANTS: dict[str, tuple[str, ...]] = {
    "tiktok": ("image-swap20", "image-swap40", "audio-swap20", "audio-swap40"), "synthetic": ("image-swap40",)}
# seeds per variant row: 3 (the clean rows keep the main table's 5), the budget of about 6 CPU-hours on
# TikTok: 4 variants x 6 rows x 3 seeds = 72 runs, which `python -m r2mr plan` estimates at 6.5 CPU-hours from its
# declared seconds per epoch (MGCN most of them; stored timings replace the estimate once runs exist), plus 18
# small synthetic runs; the tables state the minimum detectable drop that 3 seeds afford
ROBUSTNESS_SEEDS = 3


def describe_point(point: dict[str, Any] | tuple[tuple[str, Any], ...]) -> str:
    """``{"lr": 0.001, "knn_hop": True}`` -> ``"knn_hop=True, lr=0.001"`` (the defaults: ``"defaults"``)."""
    items = sorted(dict(point).items())
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in items) or "defaults"
