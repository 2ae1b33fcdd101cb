"""The offline answerer's parts that need no model: passages read as the loaders laid them out,
and words that meet across their forms and the acronyms a text defines."""

from __future__ import annotations

import pytest
from support.fake_embedder import FakeEmbedder

from rag.answer.conversation import Conversation
from rag.answer.extractive import (
    COUNTED_BONUS,
    KIND_BONUS,
    OWN_WEIGHT,
    Scorer,
    _answer_kind_bonus,
    _Candidate,
    asked_form,
)
from rag.answer.passages import units_of
from rag.answer.rewrite import offline_standalone
from rag.answer.words import acronyms, content_stems, stem, word_shares


def features_of(text: str, question: str, *, title: str = "", fragment: set[str] = frozenset()) -> dict:
    """The scorer's features of each quotable unit of `text` (one passage of a document titled
    `title`), for `question`, by the fake embedder."""
    candidates = [_Candidate(1, u, u.start, title) for u in units_of(text) if u.quotable]
    return Scorer(candidates, FakeEmbedder(), [text]).features(question, "", fragment)


def test_units_keep_the_structure_the_loaders_wrote() -> None:
    text = ("Numbers\n\nAt the end of 2024 we had:\n\n312 members\n\n£412,000 of capital\n\nOfficers\n\n"
            "Role | Name\nChair | Ann Lee\nTreasurer | Tom Hill\n\nReport\nOur arrays generated 266,300 kWh of\n"
            "electricity in 2024. It was a good year.\n\nCan I visit?\n\nNo. Nobody goes on the roof.")
    got = [(u.kind, u.text, u.context) for u in units_of(text, "Doc")]
    assert got == [
        ("heading", "Numbers", "Numbers"),
        ("lead-in", "At the end of 2024 we had:", "Numbers"),
        ("item", "At the end of 2024 we had: 312 members", "At the end of 2024 we had:"),
        ("item", "At the end of 2024 we had: £412,000 of capital", "At the end of 2024 we had:"),
        ("heading", "Officers", "Officers"),
        ("heading", "Role | Name", "Officers"),
        ("row", "Role: Chair; Name: Ann Lee", "Officers (Role | Name)"),
        ("row", "Role: Treasurer; Name: Tom Hill", "Officers (Role | Name)"),
        ("heading", "Report", "Report"),
        # A PDF's soft line breaks are joined; a pronoun is read with the sentence it points back to.
        ("sentence", "Our arrays generated 266,300 kWh of electricity in 2024.", "Report"),
        ("sentence", "It was a good year.", "Report: Our arrays generated 266,300 kWh of electricity in 2024."),
        ("question", "Can I visit?", "Report"),
        ("sentence", "No. Nobody goes on the roof.", "Report"),  # "No." is read with what it opens
    ]
    row = next(u for u in units_of(text) if u.kind == "row")
    assert text[row.start:row.end] == "Chair | Ann Lee" and text[row.context_start:].startswith("Role | Name")


def test_words_meet_across_forms_and_acronyms() -> None:
    assert stem("quorum") == stem("quorate") and stem("members") == stem("membership")
    assert stem("general") != stem("generate") and stem("branches") == "branch"
    defined = acronyms(["The Annual General Meeting (AGM) is held every September."])
    assert defined == {"agm": content_stems("Annual General Meeting")}
    asked = content_stems("what quorum does the AGM need?")
    units = [content_stems("A general meeting is quorate when 25 members are present."),
             content_stems("The accounts are examined every year.")]
    shares = word_shares(asked, units, defined)
    assert shares[0] > 0.5 and shares[1] == 0.0


def test_a_line_that_is_a_paragraph_of_its_own_is_a_heading_whatever_word_ends_it() -> None:
    text = "What a share is\n\nA share costs £50.\n\nA report line that wraps at the word of\nthe page ends here."
    got = [(u.kind, u.text) for u in units_of(text)]
    assert got == [("heading", "What a share is"), ("sentence", "A share costs £50."),
                   ("sentence", "A report line that wraps at the word of the page ends here.")]
    assert units_of(text)[1].heading == "What a share is"


def test_a_unit_naming_the_year_asked_about_in_its_words_or_heading_is_marked() -> None:
    text = ("Headline figures for 2024\n\nThe barn made 67,900 kWh.\n\nThe barn array\n\nIt has 180 panels.\n\n"
            "Before\n\nIn 2023 the barn made 70,100 kWh.")
    features = features_of(text, "How much did the barn make in 2024?")
    assert features["same_time"].tolist() == [1.0, 0.0, 0.0]
    assert features["other_time"].tolist() == [0.0, 0.0, 1.0]


def test_a_unit_is_compared_by_its_own_words_as_well_as_under_its_heading() -> None:
    # A heading says what a section is about, and can drown what one sentence of it says.
    text = "Joining from outside the village\n\nApplications from the parish are filled first."
    candidates = [_Candidate(1, u, u.start) for u in units_of(text) if u.quotable]
    embedder = FakeEmbedder()
    question = "Applications from the parish are filled first."
    under_heading = float(embedder.embed([f"{candidates[0].unit.context}: {candidates[0].unit.own}"])[0]
                          @ embedder.embed_one(question))
    cosine = Scorer(candidates, embedder, [text]).features(question, "")["cosine"][0]
    assert candidates[0].unit.context == "Joining from outside the village" and under_heading < 0.9
    assert cosine == pytest.approx((under_heading + OWN_WEIGHT * 1.0) / (1 + OWN_WEIGHT), abs=1e-6)


def test_a_month_asked_about_and_the_documents_year_mark_a_unit_too() -> None:
    text = "Generation by month\n\nMarch 19,800.\n\nApril 27,100.\n\nTotals\n\nThe arrays made 266,300 kWh."
    features = features_of(text, "How many kWh in March 2024?", title="Annual Report 2024")
    # Every unit is of 2024 by its document's title; only the March row names the month.
    assert features["same_time"].tolist() == [2.0, 1.0, 1.0]
    assert features["other_time"].tolist() == [0.0, 1.0, 0.0]


def test_a_follow_up_fragment_asks_for_its_own_words() -> None:
    text = "Who can join\n\nThe minimum holding is 5 shares.\n\nThe maximum is £30,000 per member."
    features = features_of(text, "What is the maximum holding of shares?", fragment=content_stems("And the maximum?"))
    assert features["fragment"].tolist() == [0.0, 1.0]


def test_may_is_a_month_by_its_company_not_its_case() -> None:
    from rag.answer.extractive import _months

    assert _months("how much did the barn make in may 2024?") == {"may"}
    assert _months("Until 12 May, then from June.") == {"may", "june"}
    assert _months("May members vote by post?") == set() and _months("Members MAY NOT vote twice.") == set()


def test_the_form_of_a_question_is_read_past_fillers_and_prepositions() -> None:
    assert asked_form("So then, how long has the board got?") == "how long has the board got?"
    assert asked_form("And can they stand again?") == "can they stand again?"
    assert asked_form("In what month is the AGM?") == "what month is the AGM?"
    assert asked_form("Where is the log book?") == "Where is the log book?"


@pytest.mark.parametrize("question,better,worse,bonus", [
    # The superlative that points the way asked, not any superlative.
    ("Which month produced the least electricity?", "December was the weakest month.", "June was the best month.",
     0.2),
    # "may" the verb is no month: it does not answer "when".
    ("When's the open day?", "The open day is every June.", "The arrays may produce a tenth of that.", KIND_BONUS),
    # What may or may not be done answers "can they ...?".
    ("Can a retiring director stand again?", "Retiring directors may stand again.",
     "Directors serve three-year terms.", KIND_BONUS),
    ("Where was the meeting held?", "It came out of a meeting in Wrenfield Village Hall in October 2018.",
     "The society was registered on 11 March 2019.", KIND_BONUS),
    ("Where are the minutes?", "Minutes are published in the members' area.", "Minutes are kept for the AGM.",
     KIND_BONUS),
    # "Is ...?" asks no permission: "must" and "only" do not answer it.
    ("Is the AGM in June?", "The AGM is held in June.", "Members must only vote once.", 0.0),
    # A figure in the unit of measure asked for, and the rate asked for.
    ("capacity of school array kwp", "It has 540 panels, which makes 216 kWp.", "The school array is on the hall.",
     COUNTED_BONUS),
    ("how many kWh per kWp did the school make", "The school made 918 kWh for each kWp.",
     "The school made 198,400 kWh.", KIND_BONUS),
    # A sum of money said to be a cost answers what something cost.
    ("What did it cost to run the co-op in 2024?", "Operating costs were GBP 7,550.", "The board meets monthly.",
     COUNTED_BONUS),
])
def test_the_kind_of_answer_asked_for_is_preferred(question: str, better: str, worse: str, bonus: float) -> None:
    assert _answer_kind_bonus(question, better) - _answer_kind_bonus(question, worse) == pytest.approx(bonus)


def test_irregular_verb_forms_meet_their_stem() -> None:
    assert content_stems("could I sell my shares") & content_stems("it cannot be sold") == {"sell"}
    assert stem("paid") == stem("pays") == stem("pay") and stem("made") == stem("making") == stem("makes")
    assert stem("went") == stem("goes") and stem("rose") == stem("rising")


def test_a_follow_up_with_a_question_word_of_its_own_is_no_fragment() -> None:
    def embed(texts):  # the substitution a fragment would get is never asked for here
        raise AssertionError("no words to substitute")

    def standalone(first: str, second: str) -> str:
        return offline_standalone(Conversation(second, ({"role": "user", "content": first},)), embed)

    assert standalone("Can members visit the arrays?", "When's that on?") == \
        "Can members visit the arrays? When's that on?"
    assert standalone("Is there a yearly cap on withdrawals?", "So if everyone wants out at once, who is paid first?") \
        == "Is there a yearly cap on withdrawals? So if everyone wants out at once, who is paid first?"

