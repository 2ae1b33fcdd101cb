"""Search modes. Kept apart from retrieval so the command line can offer them without loading FAISS."""

from __future__ import annotations

__all__ = ["DEFAULT_MODE", "MODES"]

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"
"""Chosen by measurement on SciFact's train split (see README, "Retrieval defaults")."""
