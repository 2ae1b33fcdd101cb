"""`rag` with the benchmarks' `bench` embedder registered (see `bench.lookup_embedder`).

    RAG_HOME=DIR python -m bench.rag_cli ingest corpus/ --collection drill
    RAG_HOME=DIR python -m bench.rag_cli serve --port 8123

Everything after the module name is the `rag` command line: the real command, plus the embedder
kind the drills' and benchmarks' collections are created with (no model to load).
"""

from __future__ import annotations

import sys

from bench.lookup_embedder import register
from ingest.cli import main

if __name__ == "__main__":
    register()
    main(sys.argv[1:])
