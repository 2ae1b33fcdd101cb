"""PostgreSQL's schema: its steps build what `rag.schema` describes, and keep in step with SQLite's."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, MetaData, create_engine, inspect, text

from rag.errors import MigrationError
from rag.migrations import MIGRATIONS, migrate
from rag.migrations_postgres import POSTGRES_MIGRATIONS
from rag.schema import POSTGRES_ONLY, Base

TABLES = sorted(Base.metadata.tables)


def family(declared: str) -> str:
    """A column type as the schema promises it: ids may be BIGINT where the classes say INTEGER,
    and collation (`C` on names and sources) is the migration's own business."""
    t = re.sub(r"\(collation=.*\)|COLLATE \S+", "", declared.upper()).strip()
    return "INTEGER" if t in ("INTEGER", "BIGINT") else t


def describe(engine: Engine) -> dict:
    insp = inspect(engine)
    out = {}
    for table in TABLES:
        extra = POSTGRES_ONLY["columns"].get(table, set())
        out[table] = {
            "columns": {c["name"]: (family(str(c["type"])), c["nullable"]) for c in insp.get_columns(table)
                        if c["name"] not in extra},
            "primary_key": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(table)
                              if i["name"] not in POSTGRES_ONLY["indexes"]
                              and not str(i["name"]).startswith(POSTGRES_ONLY["index_prefix"])),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
            "foreign_keys": sorted((f["referred_table"], tuple(f["constrained_columns"]),
                                    f["options"].get("ondelete")) for f in insp.get_foreign_keys(table)),
        }
    return out


@pytest.fixture
def engines(pg_server) -> Iterator[tuple[Engine, Engine]]:
    names = [pg_server.create_database(), pg_server.create_database()]
    migrated, declared = (create_engine(pg_server.url(n)) for n in names)
    try:
        yield migrated, declared
    finally:
        migrated.dispose()
        declared.dispose()
        for n in names:
            pg_server.drop_database(n)


@pytest.mark.filterwarnings("ignore:Did not recognize type")
def test_the_postgres_steps_build_what_the_metadata_describes(engines) -> None:
    migrated, declared = engines
    with migrated.begin() as conn:
        assert migrate(conn) == len(MIGRATIONS)
    Base.metadata.create_all(declared)
    assert describe(migrated) == describe(declared)
    with migrated.connect() as conn:  # what the classes cannot say is there too
        columns = {r[0]: r[1] for r in conn.execute(text(
            "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = 'chunks'"))}
        indexes = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")).scalars())
    assert columns["terms"] == "tsvector" and columns["vector"] == "vector"
    assert POSTGRES_ONLY["indexes"] <= indexes


@pytest.mark.filterwarnings("ignore:Did not recognize type")
def test_the_comparison_sees_a_difference(engines) -> None:
    """The test above must fail when the classes drift from the steps."""
    migrated, declared = engines
    with migrated.begin() as conn:
        migrate(conn)
    variant = MetaData()
    for t in Base.metadata.sorted_tables:
        t.to_metadata(variant)
    variant.tables["chunks"].c.page.nullable = False
    variant.create_all(declared)
    assert describe(migrated)["chunks"] != describe(declared)["chunks"]


def test_every_sqlite_step_after_the_baseline_has_a_postgres_step() -> None:
    """PostgreSQL began at SQLite's step 0005; a later schema change needs a step for each engine,
    with the same name and version (the same function, where its SQL is portable)."""
    baseline_version = POSTGRES_MIGRATIONS[0][0]
    sqlite_later = [(version, name) for version, (name, _) in enumerate(MIGRATIONS, start=1)
                    if version > baseline_version]
    postgres_later = [(version, name) for version, name, _ in POSTGRES_MIGRATIONS[1:]]
    assert postgres_later == sqlite_later
    assert baseline_version == 5 and POSTGRES_MIGRATIONS[0][1] == "0005_postgres_baseline"


def test_migrating_twice_applies_nothing_and_a_newer_database_is_refused(pg_url) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert migrate(conn) == len(MIGRATIONS)
        with engine.begin() as conn:
            assert migrate(conn) == len(MIGRATIONS)
            assert conn.execute(text("SELECT count(*) FROM schema_migrations")).scalar() == len(POSTGRES_MIGRATIONS)
            conn.execute(text("INSERT INTO schema_migrations(version, name) VALUES (99, '0099_future')"))
            with pytest.raises(MigrationError, match="0099_future"):
                migrate(conn)
    finally:
        engine.dispose()
