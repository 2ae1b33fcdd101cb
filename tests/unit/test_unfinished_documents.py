"""Claiming a dead worker's uploads reads only the unfinished documents (migration 0008).

Every upload worker asks for them when it starts and at each heartbeat; before the partial index
`documents_unfinished` that read every document of every collection, text and all (1.5 s in front of
each server start at 125k documents).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, event, text
from support.schema_history import OldCollection, OldDocument, build_database_at_0002

from rag.store import Store
from rag.workers import IngestWorkers

DIM = 4


def test_an_upgraded_database_claims_the_unfinished_uploads_through_the_partial_index(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite3"
    vector = np.eye(DIM, dtype=np.float32)[:1]
    docs = [OldDocument(f"d{i}.txt", [f"text {i}"], vector) for i in range(6)]
    build_database_at_0002(path, [OldCollection("docs", DIM, docs)])
    old = create_engine(f"sqlite:///{path}")
    with old.begin() as conn:  # a server of that release died with two uploads under way
        conn.execute(text("UPDATE documents SET status = 'processing', owner = 'gone' WHERE source = 'd1.txt'"))
        conn.execute(text("UPDATE documents SET status = 'queued', owner = 'gone' WHERE source = 'd4.txt'"))
    old.dispose()

    store = Store(path)  # upgrades: 0008 indexes the two unfinished documents
    try:
        statements: list[str] = []
        event.listen(store.engine, "connect",
                     lambda dbapi_conn, _record: dbapi_conn.set_trace_callback(statements.append))
        store.engine.dispose()
        claimed = IngestWorkers(store).claim_orphaned("alive", stale_after_s=60)
        with store.read() as s:
            ids = dict(s.execute(text("SELECT source, id FROM documents")).all())
        assert claimed == [ids["d1.txt"], ids["d4.txt"]]
        [claim] = [sql for sql in statements if sql.startswith("UPDATE documents")]
        with store.engine.connect() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {claim}")]
        assert "SCAN documents USING INDEX documents_unfinished" in plan, plan
        assert not [step for step in plan if step == "SCAN documents"], plan
    finally:
        store.close()
