"""No starvation (api/pools.py): asks hanging on the upstream cannot stop `/health` or fast routes.

The real app on uvicorn (in a thread), the fake-embedded sample collection, and the tests' OpenAI
server told to hang on chat completions: 60 asks are held there (or wait, or are turned away with
503 and Retry-After once RAG_ANSWER_WORKERS + RAG_QUEUE_LIMIT are taken) while `/health` and a
listing are timed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import httpx
import pytest
from support.asgi import ServerThread
from support.fake_embedder import KIND

from api.app import create_app
from rag.config import Settings

ASKS = 60
HEALTH_LIMIT_S = 0.1


@pytest.fixture
def hanging_service(fake_home, openai_server):
    openai_server.hang(path="/v1/chat/completions")
    settings = replace(Settings.from_env(), embedder=KIND, openai_api_key="sk-test",
                       openai_base_url=openai_server.url, openai_timeout_s=120.0)
    server = ServerThread(create_app(settings, warm_up=False), lifespan="on").start()
    try:
        yield f"http://127.0.0.1:{server.port}", settings
    finally:
        openai_server.reset()  # wakes every held request, so the server can stop
        server.stop()


def start_asks(base: str, statuses: list[httpx.Response]) -> threading.Thread:
    async def ask_all() -> None:
        limits = httpx.Limits(max_connections=ASKS + 10)
        async with httpx.AsyncClient(base_url=base, timeout=180, limits=limits) as client:
            async def one(i: int) -> None:
                statuses.append(await client.post("/collections/wren/ask", json={"question": f"quorum {i}?"}))

            await asyncio.gather(*(one(i) for i in range(ASKS)))

    thread = threading.Thread(target=asyncio.run, args=(ask_all(),), daemon=True)
    thread.start()
    return thread


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def timed(http: httpx.Client, path: str) -> float:
    """Seconds until `path` answered 200 (infinite when it did not answer in time)."""
    started = time.perf_counter()
    try:
        assert http.get(path).status_code == 200
    except httpx.TimeoutException:
        return float("inf")
    return time.perf_counter() - started


def test_health_answers_at_once_while_60_asks_hang_on_the_upstream(hanging_service, openai_server):
    base, settings = hanging_service
    answers: list[httpx.Response] = []
    thread = start_asks(base, answers)
    admitted = settings.answer_workers + settings.queue_limit
    # Asks are stuck upstream (at least as many as a shared default pool has threads: 6 on two cores).
    wait_for(lambda: len(openai_server.requests_to("/v1/chat/completions")) >= 6)
    time.sleep(1.0)  # the rest arrive and queue
    with httpx.Client(base_url=base, timeout=5) as http:
        health = sorted(timed(http, "/health") for _ in range(20))
        listing = timed(http, "/collections")
    # Most within the limit, all within a second: this one process also runs the 60 clients and
    # the upstream (one GIL), on two cores shared with other work, so a probe can wait its turn.
    # A starved /health waits for the upstream (here: for ever). `python -m bench drill
    # slow-upstream` times it from another process: p99 there.
    assert health[len(health) // 2] < HEALTH_LIMIT_S and health[-1] < 1.0, [round(t, 3) for t in health]
    assert listing < 1.0
    wait_for(lambda: len(openai_server.requests_to("/v1/chat/completions")) >= settings.answer_workers)
    time.sleep(0.5)
    assert len(openai_server.requests_to("/v1/chat/completions")) == settings.answer_workers  # no more run at once
    wait_for(lambda: len(answers) >= ASKS - admitted)
    # Back-pressure: beyond the workers and the waiting line, 503 at once, saying when to retry.
    refused = [r for r in answers if r.status_code == 503]
    assert len(refused) == ASKS - admitted
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded" for r in refused)
    openai_server.reset()  # the upstream answers again: every admitted ask completes
    thread.join(timeout=120)
    assert sorted(r.status_code for r in answers) == [200] * admitted + [503] * (ASKS - admitted)
