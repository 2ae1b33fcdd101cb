"""The work pools' back-pressure (api/pools.py): beyond its workers and waiting line a pool
refuses at once, and a stream's next event is never refused."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.pools import Pool
from rag.errors import Overloaded


def test_a_full_pool_refuses_at_once_and_takes_work_again_when_freed():
    release = threading.Event()

    async def scenario() -> None:
        pool = Pool("answers", workers=2, queue_limit=3)
        held = [asyncio.ensure_future(pool.run(release.wait)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert pool.admitted == 5
        with pytest.raises(Overloaded) as refused:
            await pool.run(lambda: "sixth")
        assert (refused.value.status, refused.value.retry_after_s, refused.value.code) == (503, 1, "overloaded")
        assert "RAG_QUEUE_LIMIT" in str(refused.value)
        late = asyncio.ensure_future(pool.run(lambda: "streamed", admit=False))  # waits its turn instead
        release.set()
        assert await asyncio.gather(*held) == [True] * 5 and await late == "streamed"
        assert pool.admitted == 0 and await pool.run(lambda: "again") == "again"
        pool.shutdown()

    asyncio.run(scenario())


def test_iterate_reads_a_blocking_iterator_on_the_pool_and_closes_it_when_left():
    closed = []

    def events():
        try:
            yield threading.current_thread().name
            yield "second"
            yield "third"
        finally:
            closed.append(True)

    async def scenario() -> list[str]:
        pool = Pool("answers", workers=1, queue_limit=0)
        seen = []
        items = pool.iterate(events())
        async for item in items:
            seen.append(item)
            if len(seen) == 2:
                break
        await items.aclose()  # as a server does when the client goes away
        pool.shutdown()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0].startswith("rag-answers") and seen[1] == "second"
    assert closed == [True]
