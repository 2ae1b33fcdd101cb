"""Where the repository and its sample corpus are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""
CORPUS = ROOT / "corpora" / "wrenfield-solar"
"""The sample corpus: 17 documents in every supported format, ingested as collection `wren`."""
