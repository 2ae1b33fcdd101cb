"""`rag serve` with the benchmarks' `bench` embedder registered (see `bench.lookup_embedder`).

    RAG_HOME=DIR RAG_BENCH_QUERY_TABLE=table.npz python -m bench.serve --port 8123

Everything after the module name is passed to `rag serve`. The server is the real one; the only
addition is the embedder kind its benchmark collections were created with.
"""

from __future__ import annotations

import sys

from bench.lookup_embedder import register
from ingest.cli import main

if __name__ == "__main__":
    register()
    main(["serve", *sys.argv[1:]])
