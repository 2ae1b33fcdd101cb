"""Our metric code against ir-measures (trec_eval's definitions) on a made-up run."""

import random

import ir_measures
import pytest
from ir_measures import RR, R, nDCG

from rag.evaluation import evaluate


def test_metrics_match_ir_measures():
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(300)]
    qrels = {f"q{q}": {d: rng.choice([1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 6))} for q in range(40)}
    runs = {}
    for q, judged in qrels.items():
        ranking = rng.sample(docs, 150)
        # Make some relevant documents rank high, some not at all.
        for d in list(judged)[: rng.randint(0, len(judged))]:
            if d in ranking:
                ranking.remove(d)
            ranking.insert(rng.randint(0, 20), d)
        runs[q] = ranking
    ours = evaluate(runs, qrels)
    qrels_im = [ir_measures.Qrel(q, d, g) for q, j in qrels.items() for d, g in j.items()]
    run_im = [ir_measures.ScoredDoc(q, d, float(len(r) - i)) for q, r in runs.items() for i, d in enumerate(r)]
    theirs = ir_measures.calc_aggregate([nDCG @ 10, R @ 100, RR @ 10], qrels_im, run_im)
    assert ours["ndcg@10"] == pytest.approx(theirs[nDCG @ 10], abs=1e-9)
    assert ours["recall@100"] == pytest.approx(theirs[R @ 100], abs=1e-9)
    assert ours["mrr@10"] == pytest.approx(theirs[RR @ 10], abs=1e-9)
    assert ours["queries"] == 40
