"""The tests' OpenAI server (`tests/openai_server.py`: vectors derived from each input's hash) in a
process of its own, so a benchmark can measure the ingest pipeline against an upstream that answers
at once, and report the upstream's own CPU time apart.

    python -m bench.openai_upstream --port 8124

`Upstream` starts it, waits until it answers, reads its CPU time from /proc and stops it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Upstream"]

PROJECT = Path(__file__).resolve().parents[1]


def _server_app():  # noqa: ANN202
    # The tests folder is not a package: its modules import each other by plain name. The server
    # sits in tests/ or, once the tests are tiered, tests/support/.
    tests = PROJECT / "tests"
    sys.path.insert(0, str(tests))
    try:
        from openai_server import FakeOpenAI  # type: ignore[import-not-found]
    except ImportError:
        from support.openai_server import FakeOpenAI  # type: ignore[import-not-found,no-redef]

    class Unrecorded(FakeOpenAI):
        """Keeps no copy of each request: a benchmark sends hundreds of megabytes."""

        async def __call__(self, scope, receive, send):  # noqa: ANN001
            await super().__call__(scope, receive, send)
            with self._lock:
                self.requests.clear()

    return Unrecorded()


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(_server_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")


class Upstream:
    """The server process: `url` for OPENAI_BASE_URL, `cpu_seconds()` for its user + system time."""

    def __init__(self) -> None:
        from bench.bench_api import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-m", "bench.openai_upstream", "--port", str(port)],
                                        env=env, cwd=PROJECT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/models", timeout=1)
                break
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenAI test server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
