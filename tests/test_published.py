"""Published numbers: well-formed, sourced, and looked up by data set and model."""

from __future__ import annotations

import pytest

from r2mr.report import published as pub


def test_every_entry_is_sourced_and_in_range() -> None:
    for (src, dataset, model), metrics in pub.RESULTS.items():
        assert src in pub.SOURCES
        assert metrics and set(metrics) <= set(pub.METRICS), (src, dataset, model)
        assert all(0.0 < v < 1.0 for v in metrics.values())
        assert metrics.get("recall@10", 0) <= metrics["recall@20"]
    for chains in pub.REFERENCES.values():
        assert all(s in pub.SOURCES for chain in chains for s in chain)


def test_lookup_prefers_the_first_source_of_a_chain() -> None:
    (ref,) = pub.published("baby", "lightgcn")
    assert ref.source.key == "MMRec" and ref.metrics["recall@20"] == 0.0754
    (ref,) = pub.published("baby", "mgcn")  # MMRec has no MGCN row: falls back to MGCN's own table
    assert ref.source.key == "MGCN" and ref.metrics["ndcg@20"] == 0.0427


def test_r2mr_has_only_the_official_clothing_log_and_it_is_test_selected() -> None:
    assert pub.published("baby", "r2mr") == [] and pub.published("sports", "r2mr") == []
    (ref,) = pub.published("clothing", "r2mr")
    assert ref.source.selection == "test"
    assert dict(ref.metrics) == {"recall@10": 0.0721, "recall@20": 0.1037, "ndcg@10": 0.0396, "ndcg@20": 0.0476}


def test_tiktok_has_two_reference_rows_and_diffmm_only_at_20() -> None:
    refs = pub.published("tiktok", "lightgcn")
    assert [r.source.key for r in refs] == ["DiffMM", "DA-MRS"]
    assert set(refs[0].metrics) == {"recall@20", "ndcg@20"}
    assert pub.published("synthetic", "bpr") == []


@pytest.mark.parametrize("name", ["baby", "sports", "clothing", "tiktok"])
def test_statistics_add_up(name: str) -> None:
    s = pub.STATISTICS[name]
    assert s.train + s.valid + s.test == s.interactions


def test_sparsity_matches_the_published_percentages() -> None:
    assert pub.STATISTICS["baby"].sparsity == pytest.approx(0.998827, abs=1e-6)
    assert pub.STATISTICS["sports"].sparsity == pytest.approx(0.999547, abs=1e-6)
    assert pub.STATISTICS["clothing"].sparsity == pytest.approx(0.9996928, abs=1e-6)
