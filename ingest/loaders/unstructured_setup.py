"""The one place that prepares unstructured to run offline, at first use rather than at import.

unstructured 0.27 does two things on its own that this service must not: it pings a telemetry
endpoint when imported (and again on every partition), and on its first partition it downloads and
pip-installs spaCy's en_core_web_sm model (`unstructured.nlp.tokenize._load_spacy_model`). Offline
the download fails, or hangs for two minutes where connections are silently dropped.

`partitioners()` is the only way the loaders reach unstructured. Its first call sets the telemetry
opt-outs, imports unstructured, and swaps the model download for a blank English spaCy pipeline with
a sentencizer, which gives unstructured tokens and sentences without any download. The swap replaces
private attributes, so it first checks they are still what it expects and fails loudly, naming the
installed version, when a new unstructured release has changed them.

It also makes unstructured's HTML parser (which Markdown goes through too) read the text of
`<details>`, `<summary>`, `<figure>` and `<figcaption>`: unstructured discards them as likely
boilerplate, but an FAQ page's questions and answers, a quotation in a figure and a caption are
text a user wrote and expects to find (`read_disclosures_and_figures`).

Nothing here runs at import: importing unstructured (with spaCy) takes seconds and commands such as
`rag search` never parse a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import Any

__all__ = [
    "BLANK_PIPELINE_NAME",
    "UnstructuredIncompatible",
    "partitioners",
    "prepare_offline",
    "read_disclosures_and_figures",
    "use_blank_spacy_pipeline",
]

BLANK_PIPELINE_NAME = "rag_blank_sentencizer"
"""`meta["name"]` of the spaCy pipeline unstructured gets instead of en_core_web_sm."""

# unstructured reads these on import and before every partition; any non-empty value opts out.
_OFFLINE_ENVIRONMENT = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",  # its usage notice on stderr
}

# The private hooks of unstructured.nlp.tokenize this module relies on, as of unstructured 0.27.
_EXPECTED_HOOKS = (
    "_load_spacy_model() and _install_spacy_model() in unstructured.nlp.tokenize, with the "
    "lru-cached _get_nlp() loading the pipeline through _load_spacy_model() (unstructured 0.27)"
)


class UnstructuredIncompatible(RuntimeError):
    """The installed unstructured no longer has the private hooks the offline set-up replaces."""


def prepare_offline() -> None:
    """Turn off unstructured's telemetry and usage notice for this process; idempotent.

    Variables the user set already are left as they are. Must run before unstructured is first
    imported, since it pings on import; `partitioners()` calls it first thing.
    """
    for name, value in _OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def check_spacy_hooks(tokenize: ModuleType) -> None:
    """Raise UnstructuredIncompatible unless `tokenize` has the hooks `use_blank_spacy_pipeline`
    replaces, shaped as in unstructured 0.27. Inspects only: nothing is called or loaded."""
    problems: list[str] = []
    for name in ("_load_spacy_model", "_install_spacy_model", "_get_nlp"):
        if not callable(getattr(tokenize, name, None)):
            problems.append(f"there is no function {name}()")
    get_nlp = getattr(tokenize, "_get_nlp", None)
    if callable(get_nlp):
        wrapped = getattr(get_nlp, "__wrapped__", None)
        code = getattr(wrapped, "__code__", None)
        if not hasattr(get_nlp, "cache_clear") or code is None:
            problems.append("_get_nlp() is no longer an lru_cache-wrapped function")
        elif "_load_spacy_model" not in code.co_names:
            problems.append("_get_nlp() no longer loads the pipeline through _load_spacy_model()")
    if problems:
        raise UnstructuredIncompatible(
            f"unstructured {_installed_version()} is not supported by ingest/loaders/"
            f"unstructured_setup.py: in unstructured.nlp.tokenize, {'; '.join(problems)}. "
            f"Expected {_EXPECTED_HOOKS}. Without them it would download a spaCy model on the "
            "first parse. Install unstructured 0.27, or update the offline set-up for this release."
        )


def use_blank_spacy_pipeline() -> None:
    """Make unstructured use a blank spaCy pipeline and refuse its model download.

    Raises UnstructuredIncompatible when the installed unstructured has changed the hooks, and
    also when, after the swap, unstructured would still not get the blank pipeline.
    """
    prepare_offline()
    from unstructured.nlp import tokenize

    check_spacy_hooks(tokenize)
    tokenize._load_spacy_model = _blank_spacy_pipeline
    tokenize._install_spacy_model = _refuse_spacy_download
    tokenize._get_nlp.cache_clear()
    # Safe to call now: the check above guarantees it reaches the blank pipeline, not a download.
    name = tokenize._get_nlp().meta.get("name")
    if name != BLANK_PIPELINE_NAME:
        raise UnstructuredIncompatible(
            f"unstructured {_installed_version()}: after replacing _load_spacy_model(), "
            f"unstructured.nlp.tokenize._get_nlp() returned the spaCy pipeline {name!r}, not "
            f"{BLANK_PIPELINE_NAME!r}. Expected {_EXPECTED_HOOKS}."
        )


# HTML elements unstructured removes with their text, and the parser class each is read with
# instead: a summary is the heading of what its details disclose, the rest are containers.
_KEPT_HTML_ELEMENTS = {"details": "Flow", "summary": "Heading", "figure": "Flow", "figcaption": "BlockItem"}


def read_disclosures_and_figures() -> None:
    """Make unstructured's HTML parser keep the text of the elements in `_KEPT_HTML_ELEMENTS`.

    The parser picks each tag's class from a module-level lxml class registry; this registers
    ordinary text classes for those tags. Raises UnstructuredIncompatible when the registry or the
    classes are gone, rather than silently losing the text again.
    """
    from unstructured.partition.html import parser

    get_namespace = getattr(getattr(parser, "element_class_lookup", None), "get_namespace", None)
    classes = {tag: getattr(parser, name, None) for tag, name in _KEPT_HTML_ELEMENTS.items()}
    if not callable(get_namespace) or not all(
            isinstance(cls, type) for cls in classes.values()):
        raise UnstructuredIncompatible(
            f"unstructured {_installed_version()} is not supported by ingest/loaders/"
            "unstructured_setup.py: unstructured.partition.html.parser no longer has the "
            f"element_class_lookup registry and the classes {sorted(set(_KEPT_HTML_ELEMENTS.values()))} "
            "that keep the text of <details>, <summary>, <figure> and <figcaption> (unstructured 0.27).")
    get_namespace(None).update(classes)


Partitioner = Callable[..., list[Any]]


@cache
def partitioners() -> dict[str, Partitioner]:
    """unstructured's partition function per format (txt, md, html, docx), set up offline once."""
    use_blank_spacy_pipeline()
    read_disclosures_and_figures()
    from unstructured.partition.docx import partition_docx
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.text import partition_text

    return {
        "txt": partition_text,
        "md": partition_md,
        "html": partition_html,
        "docx": partition_docx,
    }


def _blank_spacy_pipeline() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.meta["name"] = BLANK_PIPELINE_NAME
    return nlp


def _refuse_spacy_download() -> None:
    raise RuntimeError("the spaCy model download is disabled: this service runs offline")


def _installed_version() -> str:
    try:
        return metadata.version("unstructured")
    except metadata.PackageNotFoundError:
        return "(version unknown)"
