"""Loaders: turn a file (or uploaded bytes) into documents made of elements with offsets and pages.

Text, Markdown, HTML and DOCX go through unstructured's format-specific partitioners (`text`, set
up offline by `unstructured_setup`); PDFs are read page by page from their text layer with pypdf
(`pdf`); JSON Lines files in BEIR corpus format give one document per record (`jsonl`). `dispatch`
picks the loader; `document` holds the types they all produce.

Importing this package has no side effects and does not import unstructured: that happens, with
its offline set-up, when the first file that needs it is parsed.
"""

from ingest.loaders.dispatch import SUPPORTED_SUFFIXES, is_jsonl, load_bytes, load_file, read_jsonl_file
from ingest.loaders.document import Element, LoadedDocument
from ingest.loaders.given_text import document_from_text

__all__ = [
    "Element",
    "LoadedDocument",
    "SUPPORTED_SUFFIXES",
    "document_from_text",
    "is_jsonl",
    "load_bytes",
    "load_file",
    "read_jsonl_file",
]
