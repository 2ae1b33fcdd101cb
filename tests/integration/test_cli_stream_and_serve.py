"""`rag ask` prints the answer as the model writes it; `rag serve` on a busy port fails at once."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from support.cli import run
from support.homes import SAMPLE_COLLECTION
from support.paths import ROOT
from support.serve import rag_command, subprocess_env

REPLY = "The general meeting needs a quorum of ten members [1] present in person."


def test_ask_streams_to_the_terminal_as_the_model_writes(home: Path, openai_server):
    openai_server.set_reply(REPLY)
    gate = openai_server.hold_stream(after=4)  # the role and three words, then the stream waits
    env = subprocess_env(home, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=openai_server.url)
    process = subprocess.Popen(rag_command("ask", "What quorum does a general meeting need?", "-c",
                                           SAMPLE_COLLECTION, "--model", "gpt-5.4-mini"),
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        seen = b""
        deadline = time.monotonic() + 120
        while b"needs a" not in seen and time.monotonic() < deadline and process.poll() is None:
            seen += process.stdout.read1(64)
        # The first words are on the terminal while the model is still writing.
        assert seen.startswith(b"The general meeting needs"), seen
        assert process.poll() is None and not gate.is_set()
    finally:
        gate.set()
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    text = (seen + rest).decode()
    assert text.startswith(REPLY + "\n") and "\n[1] " in text
    assert stderr.decode().splitlines()[-1].startswith("usage: ")
    assert "completion tokens (gpt-5.4-mini)" in stderr.decode()


def test_serve_on_a_busy_port_fails_before_serving_on(home: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.perf_counter()
        result = run("serve", "--port", str(port), code=5)
        seconds = time.perf_counter() - started
    assert "serving on" not in result.output
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert seconds < 5  # before the model and the indexes load
