"""Search indexes over a collection's chunks, each kind behind one protocol.

`LexicalIndex` (words) and `DenseIndex` (vectors) are what retrieval and the writer depend on;
the `Service` picks the implementations. Today's: tantivy (`rag.indexes.lexical_tantivy`, with the
shared analysis of words in `rag.indexes.analysis`) and exact FAISS (`rag.indexes.dense_faiss`).
Importing this package loads neither engine.
"""

from rag.indexes.base import DenseIndex, LexicalIndex, Ranking

__all__ = ["DenseIndex", "LexicalIndex", "Ranking"]
