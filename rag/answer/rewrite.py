"""A follow-up question made standalone without a chat model, so retrieval can run on it.

"And on the barn?" after "How many panels are on the school roof?" means "How many panels are on the
barn?". Two rules, measured on the follow-ups of the project's answer set (`rag eval --answers`):

1. A question that names its own subject (no leading "and", "what about"; no pronoun standing for
   something said before; at least two words of its own) stands alone and is kept as asked.
2. A fragment ("and the farm?", "what about the barn array?") takes the place of the part of the
   previous question it parallels: the words of the previous question closest in meaning to the
   fragment (by the collection's embedder), so "school" gives way to "farm" and "minimum" to
   "maximum". Any other follow-up ("when do they close?") is asked after the previous question,
   whose words then tell retrieval what "they" are.

"That year" (or month) becomes the year the previous question named. The previous question is
itself made to stand alone first, so a third turn builds on the second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from rag.answer.conversation import Conversation

__all__ = ["offline_standalone"]

Embed = Callable[[Sequence[str]], np.ndarray]
"""L2-normalised vectors of short texts (the collection's embedder)."""

_LEAD = re.compile(r"^\s*(?:(?:and|but|so|also|then|ok(?:ay)?)\b[\s,]*)*(?:(?:what|how)\s+about\b\s*)?", re.I)
_WORD = re.compile(r"[\w£$€%][\w'’.,£$€%-]*\w|[\w£$€%]", re.UNICODE)
_QUESTION_START = frozenset(
    "what who whom whose when where which why how is are was were do does did can could will would should "
    "shall may might must has have had".split())
_WH_WORDS = frozenset("what who whom whose when where which why how".split())
_WHEN = re.compile(r"\b(?:(?:january|february|march|april|may|june|july|august|september|october|november|"
                   r"december)\s+)?(?:1[89]|20)\d\d\b", re.I)
_THAT_TIME = re.compile(r"\b(?:in |during |for |over )?(?:that|this|the same) (?:year|month)\b", re.I)
_PREPOSITIONS = frozenset("on in at for from by with about into over under".split())
_ANAPHORA = frozenset("it its it's they them their theirs that those these this he she him her there one ones "
                      "same other another".split())
_FUNCTION_WORDS = frozenset(
    "a an the of on in at to for from by with about into over under and or but so also then ok okay is are was "
    "were be been being do does did can could will would should shall may might must has have had what who whom "
    "whose when where which why how i me my we our you your please".split()) | _ANAPHORA


def _words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]


def _bare(word: str) -> str:
    """`word` lower-cased, without a contraction's ending ("when's" → "when")."""
    return re.sub(r"['’](?:s|re|ll|d|ve)$", "", word.lower())


def _content(words: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    return [w for w in words if w[2].lower() not in _FUNCTION_WORDS]


def offline_standalone(conversation: Conversation, embed: Embed) -> str:
    """The question of `conversation` made to stand alone (see the module docstring)."""
    users = [i for i, m in enumerate(conversation.history) if m["role"] == "user"]
    question = conversation.question
    if not users:
        return question
    # The previous question may itself have been a follow-up: made to stand alone first.
    last = users[-1]
    previous = offline_standalone(Conversation(conversation.history[last]["content"],
                                               conversation.history[:last]), embed)
    # "that year" is the year (or month) the previous question named: then the question stands alone.
    when = _WHEN.search(previous)
    if when is not None and _THAT_TIME.search(question):
        question = _THAT_TIME.sub(f"in {when.group()}", question, count=1)
    lead = _LEAD.match(question)
    core = question[lead.end():] if lead else question
    words = _words(core)
    own = _content(words)
    leads_on = bool(lead and lead.group().strip())
    refers_back = any(w.lower() in _ANAPHORA for _, _, w in words)
    if not leads_on and not refers_back and len(own) >= 2:
        return question
    # A fragment has no question word of its own: "and the barn?", not "when's that on?" nor "so if
    # everyone wants out at once, who is paid first?". (A relative "who", "and for members who
    # joined in 2020?", makes one a question too: asked after the one before, it keeps every word.)
    is_fragment = (bool(words) and _bare(words[0][2]) not in _QUESTION_START
                   and not any(_bare(w) in _WH_WORDS for _, _, w in words))
    if is_fragment and words[0][2].lower() in _PREPOSITIONS:
        # "and on the barn?": the previous question's own "on ..." phrase gives way to it whole.
        replaced = _replace_phrase(previous, words[0][2].lower(), core.strip().rstrip("?").strip())
        if replaced is not None:
            return replaced
    if is_fragment and own:
        replaced = _substitute(previous, own, embed)
        if replaced is not None:
            return replaced
    return f"{previous.strip()} {question.strip()}"


def _replace_phrase(previous: str, preposition: str, phrase: str) -> str | None:
    """`previous` with its phrase opened by `preposition` (up to the end of the content words that
    follow it) replaced by `phrase`; None when it has no such phrase."""
    words = _words(previous)
    for k, (start, _, word) in enumerate(words):
        if word.lower() != preposition:
            continue
        end, seen_content = None, False
        for _, stop, following in words[k + 1:]:
            if following.lower() in _FUNCTION_WORDS:
                if seen_content:
                    break
                continue
            seen_content, end = True, stop
        if end is not None:
            return previous[:start] + phrase + previous[end:]
    return None


def _substitute(previous: str, fragment: Sequence[tuple[int, int, str]], embed: Embed) -> str | None:
    """`previous` with the run of its content words closest in meaning to the fragment's new words
    replaced by them; None when the previous question has no content word to replace."""
    before = _content(_words(previous))
    shared = {w.lower() for _, _, w in before} & {w.lower() for _, _, w in fragment}
    new = [w for _, _, w in fragment if w.lower() not in shared]
    candidates = [w for w in before if w[2].lower() not in shared]
    if not new or not candidates:
        return None
    # Runs of neighbouring content words (at most as many as the fragment brings), so "school roof"
    # can give way to "barn" as a whole.
    runs: list[tuple[int, int]] = []
    for i in range(len(candidates)):
        for j in range(i, min(i + len(new) + 1, len(candidates))):
            between = previous[candidates[i][1]:candidates[j][0]] if j > i else ""
            if j > i and _content(_words(between)):
                break
            if j > i and len(between.split()) > 1:  # "panels are on the school": not one phrase
                break
            runs.append((i, j))
    texts = [previous[candidates[i][0]:candidates[j][1]] for i, j in runs]
    vectors = embed([" ".join(new), *texts])
    best = int(np.argmax(vectors[1:] @ vectors[0]))
    i, j = runs[best]
    return previous[:candidates[i][0]] + " ".join(new) + previous[candidates[j][1]:]
