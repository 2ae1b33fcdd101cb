"""`make bench`: every benchmark in one run, each printing its figures and its in-run reference.

    python -m bench [--docs N]    # N SciFact documents for the ingest and API benchmarks (0: all)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import bench_api, bench_embedder, bench_ingest, bench_local_embedders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="SciFact documents to ingest (0: all 5,183)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    print("== embedder ==", flush=True)
    status = bench_embedder.main([])
    print("\n== ingest and search ==", flush=True)
    status |= bench_ingest.main(["--home", str(home), "--docs", str(args.docs)])
    print("\n== API ==", flush=True)
    status |= bench_api.main(["--home", str(home)])
    print("\n== local embedders: float32 and int8 ==", flush=True)
    status |= bench_local_embedders.main(["--home", str(home)])
    return status


if __name__ == "__main__":
    sys.exit(main())
