"""Retrieval quality on a BEIR-layout data set: nDCG@10, Recall@100 and MRR@10.

Definitions follow trec_eval as BEIR reports them: graded gains with log2 discounts for nDCG,
judged-relevant documents found in the top 100 over all judged-relevant for recall, and the
reciprocal rank of the first relevant document in the top 10 for MRR. Queries with no relevant
judgment are skipped, as BEIR does.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path


def load_queries(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return {str(r["_id"]): r["text"] for r in map(json.loads, filter(str.strip, f))}


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
        if rows and not rows[0][-1].strip().lstrip("-").isdigit():  # a header line
            rows = rows[1:]
        for row in rows:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[-1])
    return qrels


def ndcg_at(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]) if judged.get(d, 0) > 0)
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], judged: Mapping[str, int], k: int = 100) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    return len(relevant.intersection(ranking[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranking[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean metrics over the queries that have at least one relevant judgment."""
    queries = [q for q, judged in qrels.items() if any(g > 0 for g in judged.values())]
    if not queries:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 0}
    n = len(queries)
    return {
        "ndcg@10": sum(ndcg_at(runs.get(q, []), qrels[q]) for q in queries) / n,
        "recall@100": sum(recall_at(runs.get(q, []), qrels[q]) for q in queries) / n,
        "mrr@10": sum(mrr_at(runs.get(q, []), qrels[q]) for q in queries) / n,
        "queries": n,
    }
