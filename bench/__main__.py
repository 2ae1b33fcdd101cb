"""`make bench`: every benchmark in one run, each printing its figures and its in-run reference.

    python -m bench [--docs N]         # embedder, SciFact ingest and search, API, both local
                                       # embedders, then scale at 100k
    python -m bench scale --size 1m    # one entry alone (`python -m bench ENTRY --help` for its options)
    python -m bench ingest-remote
    python -m bench postgres --size 1m --home DIR   # the 1M synthetic collection on PostgreSQL (not in make bench)
    python -m bench drill [--small]    # the reliability drills (`make drill`): a table of trials and failures

`--docs N`: SciFact documents for the ingest and API benchmarks (0: all).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def _entries() -> dict[str, Callable[[list[str]], int]]:
    from bench import (
        bench_api,
        bench_embedder,
        bench_ingest,
        bench_local_embedders,
        drill,
        ingest_remote,
        postgres,
        scale,
    )

    return {"embedder": bench_embedder.main, "ingest": bench_ingest.main, "api": bench_api.main,
            "scale": scale.main, "ingest-remote": ingest_remote.main,
            "local-embedders": bench_local_embedders.main, "drill": drill.main, "postgres": postgres.main}


def run_all(argv: list[str]) -> int:
    from bench import bench_api, bench_embedder, bench_ingest, bench_local_embedders, postgres, scale

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="SciFact documents to ingest (0: all 5,183)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    print("== embedder ==", flush=True)
    status = bench_embedder.main([])
    print("\n== ingest and search ==", flush=True)
    status |= bench_ingest.main(["--home", str(home), "--docs", str(args.docs)])
    print("\n== API ==", flush=True)
    status |= bench_api.main(["--home", str(home)])
    print("\n== local embedders: float32 and int8 ==", flush=True)
    status |= bench_local_embedders.main(["--home", str(home)])
    print("\n== scale ==", flush=True)
    status |= scale.main(["--size", "100k"])
    print("\n== PostgreSQL ==", flush=True)
    status |= postgres.main(["--home", str(home)])
    return status


def main() -> int:
    argv = sys.argv[1:]
    if argv and not argv[0].startswith("-"):
        entries = _entries()
        if argv[0] not in entries:
            print(f"unknown benchmark {argv[0]!r}; choose one of {', '.join(entries)}", file=sys.stderr)
            return 2
        return entries[argv[0]](argv[1:])
    return run_all(argv)


if __name__ == "__main__":
    sys.exit(main())
