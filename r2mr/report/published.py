"""Published numbers as data, each with its source: data-set statistics and Recall/NDCG tables.

Nothing here is computed. Every value was typed in from the cited table or log (numbers read off images by
hand are marked so in the source's note). The R2MR paper's own tables could not be recovered; the one R2MR
number on record is the official training log on Clothing, which was selected on the test split.

Lookups return ``None`` where nothing was published: callers show that as "no published number", never as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..core.names import REPORTED_METRICS

METRICS = REPORTED_METRICS


@dataclass(frozen=True)
class Source:
    key: str  # short id used in tables, e.g. "MMRec"
    citation: str  # where the numbers were read
    selection: str = "valid"  # protocol of the published numbers: valid (best-valid epoch) or test (test-selected)
    note: str = ""  # caveats (modalities, transcription)


SOURCES: dict[str, Source] = {s.key: s for s in [
    Source("MMRec", "Zhou et al., multimodal recommendation survey / MMRec benchmark; repo enoche/MMRec, "
           "evaluation/README.md", "valid", "Baby and Sports; BPR, LightGCN, VBPR, LATTICE, BM3, FREEDOM"),
    Source("MENTOR", "MENTOR (AAAI'25) results table, baselines copied from the original papers; repo "
           "Jinfeng-Xu/MENTOR, image/result.png", "valid", "transcribed by hand from an image"),
    Source("MGCN", "MGCN (MM'23) Table 2; repo demonph10/MGCN, image/result.png", "valid",
           "transcribed by hand from an image"),
    Source("R2MR-log", "official R2MR training log on Clothing; repo gutang-97/R2MR, "
           "log/RMR-clothing-Aug-05-2024-18-09-26.log", "test",
           "the official trainer selects on the test split; the R2MR paper's tables were not recovered"),
    Source("DiffMM", "DiffMM (MM'24) Table 1, TikTok rows (= MMSSL Table 2 baselines + BM3); repo HKUDS/DiffMM, "
           "figures/performance.png", "test",
           "V+A+T features (ours: V+A); DiffMM selects on test; only @20 published; transcribed from an image"),
    Source("DA-MRS", "DA-MRS (KDD'24) re-runs in the MMRec framework on the same TikTok split; repo XMUDM/DA-MRS, "
           "log_files/Main_results_log/tiktok", "test",
           "V+A+T features; early stopping on the released test set; one run (seed 999) per model"),
]}


def _m(r10: float | None, r20: float, n10: float | None, n20: float) -> dict[str, float]:
    vals = {"recall@10": r10, "recall@20": r20, "ndcg@10": n10, "ndcg@20": n20}
    return {k: v for k, v in vals.items() if v is not None}


# (source, dataset, model) -> metrics. Model keys are the registry names of r2mr.models.
RESULTS: dict[tuple[str, str, str], dict[str, float]] = {
    # MMRec benchmark (reference-numbers §4.1)
    ("MMRec", "baby", "bpr"): _m(0.0357, 0.0575, 0.0192, 0.0249),
    ("MMRec", "baby", "lightgcn"): _m(0.0479, 0.0754, 0.0257, 0.0328),
    ("MMRec", "baby", "vbpr"): _m(0.0423, 0.0663, 0.0223, 0.0284),
    ("MMRec", "baby", "lattice"): _m(0.0547, 0.0850, 0.0292, 0.0370),
    ("MMRec", "baby", "bm3"): _m(0.0564, 0.0883, 0.0301, 0.0383),
    ("MMRec", "baby", "freedom"): _m(0.0627, 0.0992, 0.0330, 0.0424),
    ("MMRec", "sports", "bpr"): _m(0.0432, 0.0653, 0.0241, 0.0298),
    ("MMRec", "sports", "lightgcn"): _m(0.0569, 0.0864, 0.0311, 0.0387),
    ("MMRec", "sports", "vbpr"): _m(0.0558, 0.0856, 0.0307, 0.0384),
    ("MMRec", "sports", "lattice"): _m(0.0620, 0.0953, 0.0335, 0.0421),
    ("MMRec", "sports", "bm3"): _m(0.0656, 0.0980, 0.0355, 0.0438),
    ("MMRec", "sports", "freedom"): _m(0.0717, 0.1089, 0.0385, 0.0481),
    # MENTOR table, Clothing columns (reference-numbers §4.2)
    ("MENTOR", "clothing", "bpr"): _m(0.0187, 0.0279, 0.0103, 0.0126),
    ("MENTOR", "clothing", "lightgcn"): _m(0.0340, 0.0526, 0.0188, 0.0236),
    ("MENTOR", "clothing", "vbpr"): _m(0.0281, 0.0415, 0.0158, 0.0192),
    ("MENTOR", "clothing", "lattice"): _m(0.0492, 0.0733, 0.0268, 0.0330),
    ("MENTOR", "clothing", "freedom"): _m(0.0629, 0.0941, 0.0341, 0.0420),
    ("MENTOR", "clothing", "bm3"): _m(0.0422, 0.0621, 0.0231, 0.0281),
    # MGCN's own row (reference-numbers §4.3)
    ("MGCN", "baby", "mgcn"): _m(0.0620, 0.0964, 0.0339, 0.0427),
    ("MGCN", "sports", "mgcn"): _m(0.0729, 0.1106, 0.0397, 0.0496),
    ("MGCN", "clothing", "mgcn"): _m(0.0641, 0.0945, 0.0347, 0.0428),
    # official R2MR log, final "test result" line (reference-numbers §2.1)
    ("R2MR-log", "clothing", "r2mr"): _m(0.0721, 0.1037, 0.0396, 0.0476),
    # TikTok (tiktok-numbers §2 and §3a)
    ("DiffMM", "tiktok", "bpr"): _m(None, 0.0346, None, 0.0130),
    ("DiffMM", "tiktok", "lightgcn"): _m(None, 0.0653, None, 0.0282),
    ("DiffMM", "tiktok", "vbpr"): _m(None, 0.0380, None, 0.0134),
    ("DiffMM", "tiktok", "lattice"): _m(None, 0.0843, None, 0.0367),
    ("DiffMM", "tiktok", "bm3"): _m(None, 0.0957, None, 0.0404),
    ("DA-MRS", "tiktok", "bpr"): _m(0.0348, 0.0557, 0.0177, 0.0230),
    ("DA-MRS", "tiktok", "lightgcn"): _m(0.0573, 0.0898, 0.0321, 0.0403),
    ("DA-MRS", "tiktok", "lattice"): _m(0.0633, 0.0898, 0.0366, 0.0433),
    ("DA-MRS", "tiktok", "bm3"): _m(0.0609, 0.1014, 0.0320, 0.0422),
}

# Reference rows shown per data set: each entry is a fallback list of sources (the first that has the model).
REFERENCES: dict[str, list[tuple[str, ...]]] = {
    "baby": [("MMRec", "MGCN")],
    "sports": [("MMRec", "MGCN")],
    "clothing": [("MENTOR", "MGCN", "R2MR-log")],
    "tiktok": [("DiffMM",), ("DA-MRS",)],
}


@dataclass(frozen=True)
class Published:
    source: Source
    metrics: Mapping[str, float] = field(default_factory=dict)


def published(dataset: str, model: str) -> list[Published]:
    """Published metrics of ``model`` on ``dataset``, one entry per reference row (empty if none)."""
    out = []
    for chain in REFERENCES.get(dataset, []):
        key = next((s for s in chain if (s, dataset, model) in RESULTS), None)
        if key is not None:
            out.append(Published(SOURCES[key], RESULTS[(key, dataset, model)]))
    return out


# ---- data-set statistics -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stats:
    users: int
    items: int
    interactions: int
    train: int
    valid: int
    test: int
    source: str
    note: str = ""

    @property
    def sparsity(self) -> float:
        return 1.0 - self.interactions / (self.users * self.items)


STATISTICS: dict[str, Stats] = {
    "baby": Stats(19_445, 7_050, 160_792, 118_551, 20_559, 21_682,
                  "repo enoche/MMRec, evaluation/README.md; repo georgeguo-cn/LGMRec, log/LGMRec-baby-*.log"),
    "sports": Stats(35_598, 18_357, 296_337, 218_409, 37_899, 40_029,
                    "repo enoche/MMRec, evaluation/README.md; repo georgeguo-cn/LGMRec, log/LGMRec-sports-*.log"),
    "clothing": Stats(39_387, 23_033, 278_677, 197_338, 40_150, 41_189,
                      "repo gutang-97/R2MR, log/RMR-clothing-*.log (same as LGMRec's Clothing log)"),
    "tiktok": Stats(9_308, 6_710, 68_722, 59_541, 3_051, 6_130,
                    "counted from the released split (repo HKUDS/DiffMM, Datasets/tiktok/*.pkl)",
                    "the papers say 9,319 users; the released files have 9,308"),
}
