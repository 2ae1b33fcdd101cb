"""How `rag eval --answers` grades an answer, and the project's answer set (no model: see
tests/integration/test_answer_quality.py for the command on the sample corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.paths import CORPUS, ROOT

from rag.answer import Answer, Citation
from rag.answer_quality import AnswerItem, grade, lead, load_answer_set, run_answer_set, source_matches
from rag.errors import InvalidInput

PROJECT_SET = ROOT / "corpora" / "wrenfield-solar-answers.json"


def citation(source: str, index: int = 1) -> Citation:
    return Citation(index=index, document_id=1, chunk_id=1, source=source, title=None, page=None, start_char=0,
                    end_char=1, quote="x", score=1.0)


def item(facts: tuple[tuple[str, ...], ...] = (("25 members",),), sources: tuple[str, ...] = ("governance.md",),
         turns: tuple[str, ...] = ("What quorum does a general meeting need?",)) -> AnswerItem:
    return AnswerItem(id="q", half="tune", turns=turns, facts=facts, sources=sources)


def answer(text: str, *sources: str) -> Answer:
    return Answer(text, [citation(s, n) for n, s in enumerate(sources, start=1)], "extractive")


GOV = "/home/x/corpora/wrenfield-solar/governance.md"


def test_a_fact_counts_in_the_first_two_sentences_folded_and_without_markers() -> None:
    assert grade(item(), answer("A meeting is quorate with 25\n MEMBERS [1].", GOV)).correct
    # A marker inside the fact does not hide it.
    assert grade(item(), answer("It needs 25 [1] members.", GOV)).fact_found
    assert lead("One. Two. Three.") == ["One. Two.", "One. Two. Three."]


def test_a_fact_counts_in_the_first_60_words_even_after_two_sentences() -> None:
    short = "One. Two. It needs 25 members."
    assert grade(item(), answer(short, GOV)).fact_found  # sentence 3, but word 6
    long = "One. Two. " + " ".join(["word"] * 60) + " It needs 25 members."
    assert not grade(item(), answer(long, GOV)).fact_found
    long_sentence = " ".join(["word"] * 70) + " then 25 members. Two."
    assert grade(item(), answer(long_sentence, GOV)).fact_found  # the first sentence holds it


def test_every_string_of_a_fact_must_appear_and_any_fact_will_do() -> None:
    both = item(facts=(("£50", "5 shares"), ("£50", "£250")))
    assert grade(both, answer("A share is £50; the minimum is £250.", "x/shares-and-interest.txt")).fact_found
    assert not grade(both, answer("A share is £50.", "x/shares-and-interest.txt")).fact_found


def test_a_citation_must_point_at_a_source() -> None:
    graded = grade(item(), answer("It needs 25 members [1].", "/c/wrenfield-solar/welcome.md"))
    assert graded.fact_found and not graded.source_cited and not graded.correct
    assert "governance.md" in graded.why
    assert not grade(item(), Answer("It needs 25 members.", [], "extractive")).correct
    assert source_matches("/c/faq.jsonl#faq-join", "faq.jsonl#faq-join")
    assert source_matches("/c/faq.jsonl#faq-join", "faq.jsonl")
    assert not source_matches("/c/faq.jsonl#faq-visit", "faq.jsonl#faq-join")
    assert not source_matches("/c/old-governance.md", "governance.md")


def test_earlier_turns_are_asked_first_and_their_answers_sent_back() -> None:
    seen: list[list[dict[str, str]]] = []

    def ask(messages: list[dict[str, str]]) -> Answer:
        seen.append(messages)
        return answer(f"answer {len(seen)} with 25 members [1].", GOV)

    report = run_answer_set([item(turns=("first?", "second?"))], ask)
    assert seen == [[{"role": "user", "content": "first?"}],
                    [{"role": "user", "content": "first?"},
                     {"role": "assistant", "content": "answer 1 with 25 members [1]."},
                     {"role": "user", "content": "second?"}]]
    assert report.accuracy() == (1, 1) and report.accuracy("held-out") == (0, 0)


def test_the_project_set_is_well_formed_and_covers_what_it_must() -> None:
    answer_set = load_answer_set(PROJECT_SET)
    assert answer_set.corpus is not None and answer_set.corpus.resolve() == CORPUS
    items = answer_set.items
    files = {p.name for p in CORPUS.iterdir()}
    for it in items:
        for source in it.sources:
            assert source.split("#")[0] in files, (it.id, source)
    paraphrased = [it for it in items if it.origin == "paraphrase"]
    follow_ups = [it for it in items if len(it.turns) == 2]
    assert len(paraphrased) >= 40 and len(follow_ups) >= 8
    # Every question of corpora/README.md, and the README's `rag ask` example, word for word.
    readme = (ROOT / "corpora" / "README.md").read_text()
    listed = [line.removeprefix("- ").split("? (")[0] + "?" for line in readme.splitlines()
              if line.startswith("- ") and "? (" in line]
    questions = {it.question for it in items}
    assert len(listed) == 8 and set(listed) <= questions
    assert "what quorum does the AGM need?" in (ROOT / "README.md").read_text()
    assert "what quorum does the AGM need?" in questions
    halves = {h: [it for it in items if it.half == h] for h in ("tune", "held-out")}
    # Each half large enough that one question is under 2.5 points of its accuracy.
    assert len(halves["tune"]) >= 40 and len(halves["held-out"]) >= 40
    # Paraphrases are not copied: no question appears word for word in the corpus.
    text = " ".join(p.read_text(errors="ignore") for p in CORPUS.iterdir() if p.suffix in (".md", ".txt", ".html"))
    assert not [it.question for it in paraphrased if it.question.rstrip("?").lower() in text.lower()]


def test_a_malformed_set_is_refused_naming_the_item(tmp_path: Path) -> None:
    bad = tmp_path / "set.json"
    bad.write_text(json.dumps({"items": [{"id": "a", "half": "train", "question": "q?", "facts": ["x"],
                                          "sources": ["a.md"]}]}))
    with pytest.raises(InvalidInput, match=r"item 1: missing or malformed half"):
        load_answer_set(bad)
