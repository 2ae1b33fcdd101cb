"""Words compared across a question and a passage: content words, reduced to a common stem.

A small suffix stripper rather than a full stemmer: it has to meet "quorum" and "quorate",
"generate" and "generation", "member" and "membership", which Porter's algorithm keeps apart in
the first case; it never strips a stem below four letters, so "general" and "generate" stay apart.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["STOP_WORDS", "acronyms", "content_stems", "stem", "word_shares"]

_WORD = re.compile(r"[a-z0-9£$€%][a-z0-9'’.,%-]*[a-z0-9%]|[a-z0-9]", re.I)
_SUFFIXES = sorted((
    "ations", "ation", "ating", "ated", "ates", "ate", "itions", "ition", "ions", "ion", "ings", "ing",
    "ments", "ment", "ships", "ship", "ness", "ities", "ity", "ies", "ied", "ed", "ches", "shes", "sses", "xes",
    "s", "ly", "ums", "um", "ants", "ant",
), key=len, reverse=True)
_SIBILANT_PLURALS = ("ches", "shes", "sses", "xes")
_MIN_STEM = 4
STOP_WORDS = frozenset(
    "a an the of on in at to for from by with about into over under and or but so also then than as is are was "
    "were be been being do does did doing can could will would should shall may might must has have had having "
    "what who whom whose when where which why how i me my we our us you your he she it its they them their this "
    "that these those there here not no any all some each every much many more most other such one get got "
    "please tell know gets getting".split())


# Irregular verbs, every form the suffix rules do not bring to one stem ("could I sell my shares"
# and "it cannot be sold"; "pays" and "paid" with "pay", which is too short to lose an "s").
_IRREGULAR = {form: base for base, forms in {
    "sell": "sold selling", "buy": "bought buying buys", "pay": "paid paying pays", "hold": "held holding",
    "give": "gave given giving gives", "make": "made making makes", "take": "took taken taking takes",
    "meet": "met meeting", "spend": "spent spending", "build": "built building", "keep": "kept keeping",
    "lose": "lost losing loses", "win": "won winning wins", "choose": "chose chosen choosing chooses",
    "run": "ran running runs", "send": "sent sending", "bring": "brought bringing", "lend": "lent lending",
    "begin": "began begun beginning begins", "rise": "rose risen rising rises", "fall": "fell fallen falling",
    "grow": "grew grown growing grows", "write": "wrote written writing writes", "speak": "spoke spoken speaking",
    "see": "saw seen seeing sees", "go": "went gone going goes", "come": "came coming comes",
    "stand": "stood standing", "feed": "fed feeding",
}.items() for form in forms.split()}


@functools.lru_cache(maxsize=65536)  # a corpus repeats its words: each is stemmed once
def stem(word: str) -> str:
    """`word` lower-cased, with one common suffix stripped when at least four letters remain."""
    word = word.lower().replace("’", "'").strip("'.,").removesuffix("'s")
    if any(ch.isdigit() for ch in word):
        return word.replace(",", "")
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for suffix in _SUFFIXES:
        # "-ches", "-shes", "-sses", "-xes" lose only their "es" ("branches" → "branch").
        cut = 2 if suffix in _SIBILANT_PLURALS else len(suffix)
        if word.endswith(suffix) and len(word) - cut >= (3 if cut == 2 else _MIN_STEM):
            return word[:-cut]
    return word


def content_stems(text: str) -> set[str]:
    """The stems of `text`'s words that carry meaning (stop words left out)."""
    return {stem(w) for w in _WORD.findall(text) if w.lower() not in STOP_WORDS}


_DEFINED = re.compile(r"((?:[A-Z][\w-]*\s+){1,6})\(([A-Z]{2,8})\)")


def acronyms(texts: Iterable[str]) -> dict[str, set[str]]:
    """Acronyms the texts define, "Annual General Meeting (AGM)" → {"agm": stems of the long form}:
    the document's own words for what a question may ask in short."""
    found: dict[str, set[str]] = {}
    for text in texts:
        for m in _DEFINED.finditer(text):
            short, words = m.group(2), m.group(1).split()[-len(m.group(2)):]
            if [w[0].upper() for w in words] == list(short):
                found[short.lower()] = content_stems(" ".join(words))
    return found


def word_shares(asked: set[str], units: Sequence[set[str]], expansions: Mapping[str, set[str]]) -> np.ndarray:
    """For each unit, the share of the question's words it holds, each word weighted by how rare
    it is among the units (a word every unit holds tells none apart). An acronym the passages
    define counts as held where most of its long form is."""
    if not asked or not units:
        return np.zeros(len(units))

    def holds(unit: set[str], word: str) -> bool:
        if word in unit:
            return True
        long_form = expansions.get(word)
        return long_form is not None and len(long_form) > 0 and len(long_form & unit) * 3 >= len(long_form) * 2

    held = np.array([[holds(unit, w) for w in sorted(asked)] for unit in units], dtype=float)
    weights = np.array([math.log(1 + len(units) / (1 + held[:, j].sum())) for j in range(held.shape[1])])
    return held @ weights / weights.sum()
