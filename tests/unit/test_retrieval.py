"""Search through the service on the fake embedder: dense scores are exact cosines, lexical scores
BM25, hybrid their fusion; filters, thresholds, deletes and bad input, all in milliseconds."""

from __future__ import annotations

import pytest
from support.fake_embedder import FakeEmbedder

from ingest.loaders import document_from_text
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.errors import CollectionNotFound, InvalidInput
from rag.retrieval import DENSE_WEIGHT
from rag.service import Service

QUERY = "school roof panels"
DOCUMENTS = {
    "solar": ("Solar panels on the school roof make power for the classrooms.", {"topic": "energy", "year": 2024}),
    "bees": ("Honey bees live in hives beside the barn and swarm in late spring.", {"topic": "nature", "year": 2023}),
    "shares": ("Members buy shares at fifty pounds each and earn interest every year.",
               {"topic": "money", "year": 2024}),
    "inverter": ("An inverter turns the direct current of the panels into alternating current. "
                 "It sits in the plant room below the hall. Engineers check it every spring. "
                 "Its fan hums quietly when the sun is strong.", {"topic": "energy", "year": 2023}),
}


@pytest.fixture
def service(tmp_path, backend):
    with Service(Settings(home=tmp_path, embedder="fake", database_url=backend.url)) as service:
        collection = service.create_collection("docs", chunk_size=16, chunk_overlap=0)
        docs = [document_from_text(source, text, metadata=meta) for source, (text, meta) in DOCUMENTS.items()]
        summary = Pipeline(service.writer(collection)).ingest_documents(docs)
        assert not summary.failed and len(summary.added) == len(DOCUMENTS)
        yield service


def document_ids(service: Service) -> dict[str, int]:
    return {d.source: d.id for d in service.list_documents("docs")}


def every_chunk(service: Service, mode: str, query: str = QUERY, **options) -> list:
    return service.search("docs", query, k=1000, mode=mode, **options)


def test_dense_scores_are_the_embedders_cosines_in_order(service: Service) -> None:
    hits = every_chunk(service, "dense")
    assert len(hits) == service.get_collection("docs", counts=True).chunks > len(DOCUMENTS)  # every chunk
    fake = FakeEmbedder()
    query = fake.embed_one(QUERY)
    for hit in hits:
        assert hit.score == pytest.approx(float(fake.embed_one(hit.text) @ query), abs=1e-6)
        assert (hit.dense_score, hit.lexical_score) == (hit.score, None)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].source == "solar"  # three words shared with the query


def test_lexical_finds_only_chunks_with_a_query_word(service: Service) -> None:
    hits = every_chunk(service, "lexical")
    assert {h.source for h in hits} == {"solar", "inverter"}
    assert all("panels" in h.text.lower() or "school" in h.text.lower() for h in hits)
    assert hits[0].source == "solar"
    assert all(h.dense_score is None and h.lexical_score == h.score for h in hits)
    assert every_chunk(service, "lexical", "zebra") == []


def test_hybrid_is_the_weighted_sum_of_min_max_scaled_scores(service: Service) -> None:
    dense = {h.chunk_id: h.score for h in every_chunk(service, "dense")}
    lexical = {h.chunk_id: h.score for h in every_chunk(service, "lexical")}

    def scaled(scores: dict[int, float]) -> dict[int, float]:
        lo, hi = min(scores.values()), max(scores.values())
        return {c: (s - lo) / (hi - lo) for c, s in scores.items()}

    d, lx = scaled(dense), scaled(lexical)
    hybrid = every_chunk(service, "hybrid")
    assert {h.chunk_id for h in hybrid} == dense.keys() | lexical.keys()
    for hit in hybrid:
        expected = DENSE_WEIGHT * d.get(hit.chunk_id, 0.0) + (1 - DENSE_WEIGHT) * lx.get(hit.chunk_id, 0.0)
        assert hit.score == pytest.approx(expected, abs=1e-9)
        assert hit.dense_score == pytest.approx(dense[hit.chunk_id])
        assert hit.lexical_score == pytest.approx(lexical.get(hit.chunk_id, 0.0))  # no query word: BM25 0
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert hybrid[0].source == "solar"  # first in both lists, so 1.0
    assert hybrid[0].score == pytest.approx(1.0)
    # k cuts the fused list; it does not change the fusion.
    assert [h.chunk_id for h in service.search("docs", QUERY, k=2)] == [h.chunk_id for h in hybrid[:2]]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_filters_keep_only_matching_documents(service: Service, mode: str) -> None:
    energy = every_chunk(service, mode, filter={"topic": "energy"})
    assert energy and {h.source for h in energy} <= {"solar", "inverter"}
    old = every_chunk(service, mode, "panels bees shares", filter={"year": [2023]})
    assert old and {h.source for h in old} <= {"bees", "inverter"}
    assert every_chunk(service, mode, filter={"topic": "energy", "year": 2022}) == []


def test_min_score_drops_weaker_hits(service: Service) -> None:
    hits = every_chunk(service, "dense")
    threshold = hits[2].score
    kept = every_chunk(service, "dense", min_score=threshold)
    assert kept == [h for h in hits if h.score >= threshold] and len(kept) >= 3


def test_hybrid_hits_carry_both_scores_also_when_one_list_missed_them(service: Service, monkeypatch) -> None:
    dense = {h.chunk_id: h.score for h in every_chunk(service, "dense")}
    lexical = {h.chunk_id: h.score for h in every_chunk(service, "lexical")}
    monkeypatch.setattr("rag.retrieval.HYBRID_DEPTH", 1)  # each list only k deep: some hits miss one
    hits = service.search("docs", QUERY, k=3)
    top_dense, top_lexical = (set(sorted(scores, key=lambda c: -scores[c])[:3]) for scores in (dense, lexical))
    assert {h.chunk_id for h in hits} - top_lexical  # the case this is about happened: a hit lexical missed
    for hit in hits:
        assert hit.dense_score == pytest.approx(dense[hit.chunk_id], abs=1e-6)
        assert hit.lexical_score == pytest.approx(lexical.get(hit.chunk_id, 0.0))


def test_hybrid_min_score_reads_the_dense_cosine(service: Service) -> None:
    hits = every_chunk(service, "hybrid")
    threshold = sorted((h.dense_score for h in hits), reverse=True)[2]
    kept = every_chunk(service, "hybrid", min_score=threshold)
    assert kept == [h for h in hits if h.dense_score >= threshold] and len(kept) >= 3
    # The best hit's fused score is 1.0 whatever the query; its cosine is what min_score reads.
    assert hits[0].score == pytest.approx(1.0) and hits[0].dense_score < 0.9
    assert every_chunk(service, "hybrid", min_score=hits[0].dense_score + 1e-6) == []
    lexical = every_chunk(service, "lexical")
    assert every_chunk(service, "lexical", min_score=lexical[0].score) == lexical[:1]  # BM25 in lexical mode


def test_best_chunk_per_document_keeps_each_documents_best(service: Service) -> None:
    best = service.best_chunk_per_document("docs", QUERY, mode="dense")
    assert len(best) == len({h.document_id for h in best}) == len(DOCUMENTS)
    top: dict[int, float] = {}
    for hit in every_chunk(service, "dense"):
        top.setdefault(hit.document_id, hit.score)
    assert [(h.document_id, h.score) for h in best] == sorted(top.items(), key=lambda item: -item[1])


def test_deleted_documents_leave_every_mode(service: Service) -> None:
    solar = document_ids(service)["solar"]
    deleted = service.delete_documents("docs", [solar])
    assert deleted.document_ids == [solar] and deleted.chunks == 1
    for mode in ("dense", "lexical", "hybrid"):
        assert all(h.document_id != solar for h in every_chunk(service, mode)), mode
    assert every_chunk(service, "lexical", "school roof") == []


def test_spans_point_into_the_stored_text(service: Service) -> None:
    for hit in every_chunk(service, "hybrid"):
        text = service.get_document("docs", hit.document_id).text
        assert text[hit.start_char:hit.end_char] == hit.text


@pytest.mark.parametrize(("options", "param"), [
    ({"mode": "fuzzy"}, "mode"), ({"k": 0}, "k"), ({"k": 1001}, "k"), ({"query": "  "}, "query"),
])
def test_bad_input_names_its_field(service: Service, options: dict, param: str) -> None:
    arguments = {"query": QUERY, **options}
    with pytest.raises(InvalidInput) as caught:
        service.search("docs", arguments.pop("query"), **arguments)
    assert caught.value.param == param


def test_bad_filters_and_unknown_collections_are_refused(service: Service) -> None:
    with pytest.raises(InvalidInput, match="filter"):
        service.search("docs", QUERY, filter={"a b": 1})
    with pytest.raises(CollectionNotFound):
        service.search("nope", QUERY)

