"""`rag` in a subprocess, as a user runs it: the environment it gets and `rag serve` until stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support.net import free_port
from support.paths import ROOT


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `rag` subprocess: this one's, minus every setting of the service, with
    RAG_HOME at `home` and the per-user data folder (XDG_DATA_HOME) beside it, never the real one."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAG_", "OPENAI_")) and k != "TIKTOKEN_CACHE_DIR"}
    home = Path(home)
    env.update(RAG_HOME=str(home), XDG_DATA_HOME=str(home.parent / f"{home.name}-xdg-data"), DO_NOT_TRACK="1",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def rag_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ingest.cli", *args]


class ServeProcess:
    """`rag serve` on 127.0.0.1 in a subprocess, on the data folder `home`."""

    def __init__(self, home: Path, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "wb")
        self.process = subprocess.Popen(rag_command("serve", "--host", "127.0.0.1", "--port", str(self.port)),
                                        cwd=ROOT, env=subprocess_env(home, **env), stdout=self._log_file,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 90.0, path: str = "/health/ready") -> ServeProcess:
        """Wait until `path` answers 200: `/health/ready` once the model and indexes are loaded,
        `/health/live` as soon as the server accepts connections."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"rag serve did not answer {path} in {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()
