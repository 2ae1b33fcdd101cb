"""The citation filter: markers that point at no passage are dropped from a streamed answer, even
when a marker arrives split across chunks; everything else passes unchanged."""

from __future__ import annotations

from rag.answer import CitationFilter


def test_filter_keeps_a_marker_split_across_feeds():
    f = CitationFilter(3)
    assert f.feed("Panels [1") == "Panels "
    assert f.feed("] and more") == "[1] and more"
    assert f.finish() == ""
    assert f.cited == [1]


def test_filter_drops_a_split_number_beyond_the_passages():
    f = CitationFilter(3)
    assert f.feed("See [12") == "See "
    assert f.feed("].") == "."
    assert f.feed(" Also [3,") == " Also "
    assert f.feed(" 12][2]") == "[3][2]"
    assert f.cited == [3, 2]


def test_filter_leaves_other_brackets_alone():
    f = CitationFilter(3)
    assert f.feed("As noted [see above] and [a] [0] [") == "As noted [see above] and [a]  "
    assert f.feed("note]") == "[note]"
    assert f.cited == []


def test_filter_flushes_an_unterminated_bracket_at_the_end():
    f = CitationFilter(3)
    assert f.feed("The end [2") == "The end "
    assert f.finish() == "[2"
    assert f.finish() == ""
    assert f.cited == []
    # A held "[" that grows too long to be a marker is released without waiting for the end.
    g = CitationFilter(3)
    assert g.feed("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10") == "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10"


def test_filter_checks_markers_inside_other_brackets():
    f = CitationFilter(2)
    assert f.feed("x [see [99] y") == "x [see  y"
    assert f.feed(" a [[7]] b [[2]]") == " a [] b [[2]]"
    g = CitationFilter(2)
    assert g.feed("[1") == ""
    assert g.feed(" and then [9] too") == "[1 and then  too"
    assert f.cited == [2] and g.cited == []
