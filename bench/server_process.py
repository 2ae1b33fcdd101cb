"""A real `rag serve` process for the benchmarks: started, timed until it can search, measured, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.bench_api import free_port
from bench.lookup_embedder import TABLE_ENV

__all__ = ["ServerProcess", "ServerFailed"]


class ServerFailed(RuntimeError):
    """The server exited, or did not answer in time."""


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class ServerProcess:
    """`python -m bench.serve` (rag serve with the bench embedder) on a free loopback port."""

    def __init__(self, home: Path, table: Path | None, *, log_file: Path | None = None,
                 database_url: str | None = None):
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
        env["RAG_HOME"] = str(home)
        if database_url is not None:
            env["RAG_DATABASE_URL"] = database_url
        if table is not None:
            env[TABLE_ENV] = str(table)
        self._log = open(log_file or home / "bench-server.log", "ab")  # noqa: SIM115 (closed in stop)
        project = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH", "")]))
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "bench.serve", "--port", str(self.port)],
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=project)

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (VmHWM)."""
        return _status_kb(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def wait_ready(self, collection: str, query: str, *, timeout_s: float) -> float:
        """Seconds from start until `/health/ready` answers 200 (the model and every collection's
        indexes loaded: `/health` answers at once, while they load in the background) and a first
        search succeeds."""
        deadline = self.started + timeout_s
        with httpx.Client(base_url=self.base, timeout=timeout_s) as http:
            while True:
                if self.process.poll() is not None:
                    raise ServerFailed(f"the server exited with {self.process.returncode} (see {self._log.name})")
                try:
                    if http.get("/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    raise ServerFailed(f"not ready (/health/ready) within {timeout_s:.0f} s")
                time.sleep(0.05)
            r = http.post(f"/collections/{collection}/search", json={"query": query, "k": 10},
                          timeout=max(1.0, deadline - time.perf_counter()))
            r.raise_for_status()
        return time.perf_counter() - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
