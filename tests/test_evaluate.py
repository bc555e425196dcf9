"""Evaluator: hand-computed cases and agreement with a slow, obviously-correct reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from r2mr.data import Dataset, Split
from r2mr.evaluation.evaluator import Evaluator, rank_metrics


def make_ds(train: list[tuple[int, int]], valid: list[tuple[int, int]], test: list[tuple[int, int]],
            n_users: int, n_items: int) -> Dataset:
    def sp(pairs: list[tuple[int, int]]) -> Split:
        a = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return Split(a[:, 0].copy(), a[:, 1].copy())
    return Dataset("t", n_users, n_items, sp(train), sp(valid), sp(test))


def reference(scores: np.ndarray, ds: Dataset, split: str, ks: list[int]) -> dict[str, float]:
    """Per-user Python loop over sorted lists, straight from the definitions."""
    train = {}
    for u, i in zip(ds.train.users, ds.train.items):
        train.setdefault(u, set()).add(i)
    truth = {}
    sp = ds.split(split)
    for u, i in zip(sp.users, sp.items):
        truth.setdefault(u, set()).add(i)
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "precision", "map") for k in ks}
    for u, t in truth.items():
        order = [i for i in np.argsort(-scores[u], kind="stable") if i not in train.get(u, set())]
        for k in ks:
            top = order[:k]
            hits = [1 if i in t else 0 for i in top]
            out[f"recall@{k}"].append(sum(hits) / len(t))
            out[f"precision@{k}"].append(sum(hits) / k)
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(t), k)))
            out[f"ndcg@{k}"].append(dcg / idcg)
            ap = sum(h * sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits))
            out[f"map@{k}"].append(ap / min(len(t), k))
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_hand_example() -> None:
    """User 0: train {0}; test {1, 3}; scores rank items 4 > 0 (masked) > 1 > 2 > 3.

    Top-3 after masking: [4, 1, 2] -> hits [0, 1, 0].
    Recall@3 = 1/2; Precision@3 = 1/3; NDCG@3 = (1/log2 3) / (1 + 1/log2 3); MAP@3 = (1 * 1/2) / 2 = 0.25.
    User 1: train {}; test {2}; scores rank 2 first -> all metrics at K=3: recall 1, ndcg 1, precision 1/3, map 1.
    """
    ds = make_ds([(0, 0), (1, 4)], [(0, 2)], [(0, 1), (0, 3), (1, 2)], 2, 5)
    scores = torch.tensor([[5.0, 4.0, 3.0, 1.0, 6.0],  # user 0 ranks 4, 0 (masked), 1, 2, 3
                           [0.0, 0.0, 9.0, 0.0, 0.0]])  # user 1 ranks 2 first (4 is masked)
    ev = Evaluator(ds, ks=(3,))
    m = ev(lambda u: scores[u].clone(), "test")
    u0 = {"recall@3": 0.5, "precision@3": 1 / 3, "ndcg@3": (1 / math.log2(3)) / (1 + 1 / math.log2(3)), "map@3": 0.25}
    u1 = {"recall@3": 1.0, "precision@3": 1 / 3, "ndcg@3": 1.0, "map@3": 1.0}
    for k in u0:
        assert m[k] == pytest.approx((u0[k] + u1[k]) / 2), k


def test_perfect_and_no_hit() -> None:
    ds = make_ds([(0, 0)], [(0, 1)], [(0, 1), (0, 2)], 1, 6)
    perfect = torch.tensor([[9.0, 8.0, 7.0, 0.0, 0.0, 0.0]])
    m = Evaluator(ds, ks=(2, 5))(lambda u: perfect[u].clone(), "test")
    assert m["recall@2"] == m["ndcg@2"] == m["map@2"] == 1.0 and m["precision@2"] == 1.0
    none = torch.tensor([[9.0, 0.0, 0.0, 8.0, 7.0, 6.0]])
    m = Evaluator(ds, ks=(3,))(lambda u: none[u].clone(), "test")
    assert all(v == 0.0 for v in m.values())


def test_training_items_masked_valid_items_not() -> None:
    ds = make_ds([(0, 0)], [(0, 1)], [(0, 2)], 1, 4)
    scores = torch.tensor([[10.0, 9.0, 8.0, 0.0]])  # item 0 (train) masked; item 1 (valid) stays in test ranking
    m = Evaluator(ds, ks=(1, 2))(lambda u: scores[u].clone(), "test")
    assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_on_random_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 30
    pairs = [(u, i) for u in range(n_users) for i in rng.choice(n_items, rng.integers(2, 12), replace=False)]
    labels = rng.choice(3, len(pairs), p=[0.6, 0.2, 0.2])

    def split(lab: int) -> list:
        return [p for p, label in zip(pairs, labels) if label == lab]

    ds = make_ds(split(0), split(1), split(2), n_users, n_items)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    ks = [1, 5, 10, 20]
    for batch in (7, 4096):  # batching must not change the result
        ev = Evaluator(ds, ks=ks, batch_size=batch)
        got = ev.evaluate(lambda u: torch.from_numpy(scores)[u].clone())
        for s in ("valid", "test"):
            ref = reference(scores, ds, s, ks)
            for k, v in ref.items():
                assert got[s][k] == pytest.approx(v, abs=1e-9), (s, k)


def test_rank_metrics_idcg_capped() -> None:
    """3 held-out items, K = 2, hits at ranks 1 and 2 -> NDCG@2 = 1 (IDCG over min(3, 2) = 2 positions)."""
    m = rank_metrics(torch.tensor([[1.0, 1.0]]), torch.tensor([3]), [2])
    assert m["ndcg@2"].item() == pytest.approx(1.0) and m["recall@2"].item() == pytest.approx(2 / 3)


def test_per_user_values_align_with_users_and_means() -> None:
    """User 0 and 1 of the hand example: per-user recall@3 0.5 and 1.0, ndcg as computed there."""
    ds = make_ds([(0, 0), (1, 4)], [(0, 2)], [(0, 1), (0, 3), (1, 2)], 2, 5)
    scores = torch.tensor([[5.0, 4.0, 3.0, 1.0, 6.0], [0.0, 0.0, 9.0, 0.0, 0.0]])
    ev = Evaluator(ds, ks=(3,))
    means, per = ev.evaluate_full(lambda u: scores[u].clone(), ("valid", "test"), per_user=("recall@3", "ndcg@3"))
    assert per["test"]["users"].tolist() == [0, 1] and per["valid"]["users"].tolist() == [0]
    assert per["test"]["recall@3"].tolist() == [0.5, 1.0]
    assert per["test"]["ndcg@3"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert set(per["test"]) == {"users", "recall@3", "ndcg@3"}
    assert means == ev.evaluate(lambda u: scores[u].clone(), ("valid", "test"))
    assert float(per["test"]["recall@3"].mean()) == means["test"]["recall@3"]


def test_per_user_file_round_trip(tmp_path) -> None:
    from r2mr.evaluation.evaluator import load_per_user, save_per_user

    users = np.array([3, 5, 9])
    sel = {"by_valid": {"epoch": 4, "test": {"users": torch.tensor(users), "recall@20": torch.tensor([0.0, 0.5, 1.0])}},
           "by_test": {"epoch": 7, "test": {"users": users, "recall@20": np.array([1.0, 0.5, 1.0])}}}
    back = load_per_user(save_per_user(tmp_path / "per_user.npz", sel))
    assert back["by_valid"]["epoch"] == 4 and back["by_test"]["epoch"] == 7
    assert back["by_valid"]["test"]["users"].tolist() == [3, 5, 9]
    assert back["by_test"]["test"]["recall@20"].tolist() == [1.0, 0.5, 1.0]
    assert back["by_valid"]["test"]["recall@20"].tolist() == [0.0, 0.5, 1.0]
