"""The `rag` command line: a thin shell over `rag.service.Service` and `ingest/pipeline`.

Results go to stdout; progress, logs and errors to stderr, so `rag search --json | jq` works.
Exit statuses are `rag.errors.EXIT_CODES`: each service error carries its own (`exit_code`).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# No telemetry opt-out here: importing must not change os.environ. unstructured is imported only
# when a file is parsed, and ingest.loaders.unstructured_setup.prepare_offline() sets DO_NOT_TRACK
# and the rest right before that, for the CLI and the API alike.
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rag.config import Settings
from rag.data_folder import default_home, legacy_home
from rag.errors import CollectionNotFound, RagError
from rag.modes import DEFAULT_MODE, MODES

out = Console(soft_wrap=True)
err = Console(stderr=True)


class CliError(click.ClickException):
    """A usage mistake click cannot see: a one-line message and exit status 2."""

    exit_code = 2


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn the service's errors into a one-line message and the exit status each calls for."""
    try:
        yield
    except RagError as e:
        message = str(e)
        ctx = click.get_current_context(silent=True)
        home = ctx.meta.get(_HOME) if ctx is not None else None
        if isinstance(e, CollectionNotFound) and home is not None:
            # The command line may name its own data folder (the HTTP API never names server paths).
            message += f" in the data folder {home} (RAG_HOME; `rag collections` lists what it holds)"
        click.echo(f"Error: {message}", err=True)
        raise click.exceptions.Exit(e.exit_code) from None


_HOME = "rag.home"
"""Key of the data folder in the click context's `meta`, for error messages."""


def _settings() -> Settings:
    with service_errors():
        settings = Settings.from_env()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().meta[_HOME] = settings.home
    old = legacy_home(os.environ)
    if old is not None and settings.home == old:
        _say_once(_legacy_notice(old, default_home()))
    return settings


def _say_once(message: str) -> None:
    """Print a notice on stderr once per command run."""
    ctx = click.get_current_context(silent=True)
    said = ctx.find_root().meta.setdefault("rag.said", set()) if ctx is not None else set()
    if message not in said:
        said.add(message)
        click.echo(message, err=True)


def _legacy_notice(old: Path, new: Path) -> str:
    """How to move an earlier version's ./data to the per-user data folder (or keep it)."""
    q = shlex.quote
    notice = (f"note: using {old}, where earlier versions kept their data (RAG_HOME is unset); "
              f"the default data folder is now {new}. ")
    if (new / "rag.sqlite3").exists():
        return notice + f"{new} already holds a database of its own; to keep using this one, set RAG_HOME={q(str(old))}"
    moved = f"{q(str(old))}/rag.sqlite3*" + (f" {q(str(old / 'indexes'))}" if (old / "indexes").is_dir() else "")
    return notice + (f"To move it there: mkdir -p {q(str(new))} && mv {moved} {q(str(new))}/ "
                     f"(then delete {q(str(old))}: its model copy is rebuilt); "
                     f"or set RAG_HOME={q(str(old))} to keep it here")


def _service():
    from rag.service import Service

    with service_errors():
        return Service(_settings())


def _json_option(value: str | None, name: str) -> dict | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint=name) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return parsed


def _print_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal (long values folded onto more lines, never cut short); piped, plain
    tab-separated lines under a header line, so `grep`, `cut` and `sort` see whole file names."""
    if not out.is_terminal:
        for row in [columns, *rows]:
            click.echo("\t".join(" ".join(cell.split()) for cell in row))
        return
    table = Table(*columns)
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(*row)
    out.print(table, markup=False, highlight=False)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


min_score_option = click.option("--min-score", type=float,
                                 help="Only hits scoring at least this (the score search reports).")

collection_option = click.option("--collection", "-c", required=True, envvar="RAG_COLLECTION",
                                 help="Collection name (or RAG_COLLECTION).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag-service")
def main() -> None:
    """Semantic search and question answering over your documents, offline by default.

    Data lives in RAG_HOME (default: the per-user data folder; `rag info` shows it).
    """


# -- ingest --------------------------------------------------------------------------------------

@main.command()
@click.argument("paths", nargs=-1, required=True)
@collection_option
@click.option("--glob", "glob_", help="Only files whose name or relative path matches, e.g. '*.md'.")
@click.option("--prune", is_flag=True, help="Delete documents under these paths that are gone.")
@click.option("--chunk-size", type=click.IntRange(16, 8191), help="Chunk size in tokens (new collection).")
@click.option("--overlap", type=click.IntRange(0, 8190), help="Chunk overlap in tokens (new collection).")
@click.option("--embedder", type=click.Choice(["local", "local-int8", "openai"]),
              help="Embedder of a new collection (default: RAG_EMBEDDER, else local).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(paths, collection, glob_, prune, chunk_size, overlap, embedder, as_json) -> None:
    """Ingest files and folders into a collection (created on first use). Idempotent."""
    from ingest.parse_pool import ParseLimits, ParserPool

    service = _service()
    with service_errors(), ParserPool(ParseLimits.from_settings(service.settings)) as parser:
        coll = service.open_collection(collection, create=True, embedder=embedder, chunk_size=chunk_size,
                                       chunk_overlap=overlap)
        summary = _ingest_with_progress(service.writer(coll), paths, glob=glob_, prune=prune, parser=parser)
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        _report_files(summary)
        rate = summary.tokens / summary.seconds if summary.seconds else 0
        out.print(
            f"{collection}: {len(summary.added)} added, {len(summary.updated)} updated, "
            f"{len(summary.unchanged)} unchanged, {len(summary.removed)} removed, {len(summary.failed)} failed, "
            f"{len(summary.skipped)} skipped"
            f" ({summary.chunks} chunks, {summary.tokens:,} tokens in {summary.seconds:.1f}s, {rate:,.0f} tokens/s)"
        )
    if summary.failed:
        sys.exit(1)


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it; listed in rag.errors.EXIT_CODES)."""

PLAIN_PROGRESS_EVERY_S = 10.0
"""When stderr is not a terminal (a log file), one progress line this often instead of a bar."""


def _ingest_with_progress(writer, paths, *, glob: str | None = None, prune: bool = False, parser=None):
    """Run the pipeline with a progress display on stderr (by files, or by records once a JSON Lines
    file is read). On Ctrl-C, say what was committed and that a rerun resumes, and exit 130."""
    from ingest.pipeline import IngestInterrupted, Pipeline

    started = time.perf_counter()
    last_line: list = [started, "files"]  # when the last plain line was printed, and its unit

    def counts(p) -> tuple[str, int, int]:
        if p.records_total:
            return "records", p.records_done, p.records_total
        return "files", p.files_done, p.files_total

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[docs]} documents, {task.fields[chunks]} chunks, {task.fields[rate]} tokens/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=not err.is_terminal,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("files", total=None, docs=0, chunks=0, rate="-")

        def on_progress(p) -> None:
            now = time.perf_counter()
            rate = f"{p.tokens / max(now - started, 1e-3):,.0f}"
            unit, done, total = counts(p)
            bar.update(task, description=unit, total=total, completed=done, docs=p.documents, chunks=p.chunks,
                       rate=rate)
            if not err.is_terminal and (now - last_line[0] >= PLAIN_PROGRESS_EVERY_S or unit != last_line[1]):
                last_line[:] = [now, unit]
                click.echo(f"{done:,}/{total:,} {unit}, {p.documents:,} documents, {p.chunks:,} chunks, "
                           f"{rate} tokens/s, {now - started:.0f}s", err=True)

        try:
            return Pipeline(writer, on_progress=on_progress, parser=parser).ingest_paths(paths, glob=glob, prune=prune)
        except IngestInterrupted as stop:
            bar.stop()
            done = stop.summary
            click.echo(f"interrupted after {done.seconds:.0f}s: {done.documents:,} documents committed "
                       f"({done.chunks:,} chunks), {len(done.unchanged):,} already there. Run the same command "
                       f"again to resume: what is committed is kept and skipped as unchanged. (Exiting once the "
                       f"embedding call in flight returns.)", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


def _report_files(summary) -> None:
    """Each failed and skipped file (or JSON Lines record) on stderr, one line each."""
    for f in summary.failed:
        click.echo(f"failed {f.source}: {f.reason}", err=True)
    for f in summary.skipped:
        click.echo(f"skipped {f.source}: {f.reason}", err=True)


# -- the data folder -----------------------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the same as JSON.")
def info(as_json: bool) -> None:
    """Where the data lives: data folder, database, models, collections and their sizes on disk."""
    service = _service()
    with service_errors():
        facts = service.info()
    if as_json:
        out.print_json(json.dumps({
            "home": str(facts.home), "database_url": facts.database_url, "database_bytes": facts.database_bytes,
            "embedder": facts.embedder, "chat_model": facts.chat_model,
            "models": [{"path": str(m.path), "bytes": m.bytes} for m in facts.models],
            "collections": [c.__dict__ for c in facts.collections]}))
        return
    lines = [("data folder", str(facts.home)),
             ("database", f"{facts.database_url} ({_size(facts.database_bytes)})"),
             ("embedder", f"{facts.embedder} (for new collections)"),
             ("answers", facts.chat_model or "extractive (no OPENAI_API_KEY)")]
    lines += [("model", f"{m.path.name} ({_size(m.bytes)})") for m in facts.models] or [("model", "none built yet")]
    for label, value in lines:
        click.echo(f"{label + ':':13} {value}")
    click.echo("")
    if not facts.collections:
        click.echo("no collections yet: `rag ingest PATH -c NAME` makes one")
        return
    _print_table(("collection", "embedder", "documents", "chunks", "indexes on disk"),
                 [(c.name, c.embedder, str(c.documents), str(c.chunks), _size(c.index_bytes))
                  for c in facts.collections])


# -- collections and documents -------------------------------------------------------------------

@main.group(invoke_without_command=True)
@click.pass_context
def collections(ctx: click.Context) -> None:
    """List collections (or show / delete one)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_collections)


@collections.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_collections(as_json: bool = False) -> None:
    """List collections."""
    service = _service()
    with service_errors():
        rows = service.list_collections()
    if as_json:
        out.print_json(json.dumps({"data": [c.to_dict() for c in rows]}))
        return
    _print_table(("name", "embedder", "chunking", "documents", "chunks"),
                 [(c.name, f"{c.embedder.kind}:{c.embedder.model_id}", f"{c.chunk_size}/{c.chunk_overlap}",
                   str(c.documents), str(c.chunks)) for c in rows])


@collections.command("show")
@click.argument("name")
def show_collection(name: str) -> None:
    """Show one collection as JSON."""
    service = _service()
    with service_errors():
        out.print_json(json.dumps(service.get_collection(name, counts=True).to_dict()))


@collections.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_collection(name: str, yes: bool) -> None:
    """Delete a collection with all its documents."""
    service = _service()
    with service_errors():
        service.get_collection(name)
        if not yes:
            click.confirm(f"Delete collection {name!r} and all its documents?", abort=True, err=True)
        service.delete_collection(name)
    err.print(f"deleted collection {name}")


@main.group()
def documents() -> None:
    """List or delete documents of a collection."""


source_option = click.option("--source", help="Only the document at exactly this source.")
source_prefix_option = click.option("--source-prefix", help="Only documents whose source starts with this "
                                    "(a folder: notes/).")


@documents.command("list")
@collection_option
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000)
@source_option
@source_prefix_option
@click.option("--json", "as_json", is_flag=True)
def list_documents(collection: str, limit: int, source: str | None, source_prefix: str | None,
                   as_json: bool) -> None:
    """List the documents of a collection."""
    service = _service()
    with service_errors():
        docs = service.list_documents(collection, limit=limit, source=source, source_prefix=source_prefix)
    if as_json:
        out.print_json(json.dumps({"data": [d.to_dict() for d in docs]}))
        return
    _print_table(("id", "source", "status", "chunks", "updated"),
                 [(str(d.id), d.source, d.status + (f": {d.error}" if d.error else ""), str(d.chunks), d.updated_at)
                  for d in docs])


@documents.command("delete")
@collection_option
@source_option
@source_prefix_option
@click.argument("document_ids", nargs=-1, type=int)
def delete_documents(collection: str, source: str | None, source_prefix: str | None,
                     document_ids: tuple[int, ...]) -> None:
    """Delete documents by id, by --source, or every one under --source-prefix."""
    if bool(document_ids) + (source is not None) + (source_prefix is not None) != 1:
        raise click.UsageError("give document ids, --source or --source-prefix (one of them)")
    service = _service()
    with service_errors():
        if document_ids:
            deleted = service.delete_documents(collection, list(document_ids))
        else:
            deleted = service.delete_documents_by_source(collection, source=source, source_prefix=source_prefix)
    ids = ", ".join(map(str, deleted.document_ids)) or "none matched"
    err.print(f"deleted {len(deleted.document_ids)} document(s), {deleted.chunks} chunk(s): {ids}")


@main.command()
@collection_option
def reindex(collection: str) -> None:
    """Rebuild a collection's FAISS index from the store."""
    service = _service()
    with service_errors():
        vectors = service.reindex(collection)
    err.print(f"{collection}: index rebuilt with {vectors} vectors")


# -- search and similarity -----------------------------------------------------------------------

@main.command()
@click.argument("query")
@collection_option
@click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True)
@click.option("--filter", "filter_", help='Metadata filter as JSON, e.g. \'{"lang": ["en", "fr"]}\'.')
@min_score_option
@click.option("--json", "as_json", is_flag=True, help="Print {\"hits\": [...]}.")
def search(query: str, collection: str, k: int, mode: str, filter_: str | None, min_score: float | None,
           as_json: bool) -> None:
    """Search a collection."""
    service = _service()
    with service_errors():
        hits = service.search(collection, query, k=k, mode=mode, filter=_json_option(filter_, "--filter"),
                              min_score=min_score)
    if as_json:
        out.print_json(json.dumps({"hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        err.print("no hits")
    for n, h in enumerate(hits, start=1):
        where = h.source + (f" p.{h.page}" if h.page else "")
        out.print(f"[bold]{n}. {h.score:.4f}[/bold] {where} [dim](chunk {h.chunk_id})[/dim]")
        out.print("   " + " ".join(h.text.split())[:300])


def _read_pairs(handle) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(handle, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise CliError(f"line {n}: expected two texts separated by one tab")
        pairs.append((parts[0], parts[1]))
    return pairs


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--pairs", type=click.File("r", encoding="utf-8"),
              help="TSV of text pairs ('-' for stdin); prints one score per line.")
@click.option("--embedder", type=click.Choice(["local", "local-int8", "openai"]), envvar="RAG_EMBEDDER",
              default="local", show_default=True)
def similarity(texts: tuple[str, ...], pairs, embedder: str) -> None:
    """Cosine similarity of two texts, or of each pair in a TSV."""
    if pairs is None and len(texts) != 2:
        raise CliError("give two texts, or --pairs FILE")
    if pairs is not None and texts:
        raise CliError("give either two texts or --pairs, not both")
    todo = _read_pairs(pairs) if pairs is not None else [texts]
    service = _service()
    with service_errors():
        scores = service.similarity(todo, kind=embedder)
    for score in scores:
        out.print(f"{score:.4f}")


# -- answering and serving -----------------------------------------------------------------------

@main.command()
@click.argument("question")
@collection_option
@click.option("-k", type=click.IntRange(1, 100), help="Passages to answer from [default: 5 for a chat model, 8 "
                                                     "offline].")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True)
@click.option("--model", help="extractive, or a chat model (needs OPENAI_API_KEY); default: RAG_CHAT_MODEL "
                              "with a key, else extractive.")
@click.option("--filter", "filter_", help="Metadata filter as JSON, as for search.")
@min_score_option
@click.option("--json", "as_json", is_flag=True, help="Print {answer, citations, model, usage} once it is whole.")
def ask(question: str, collection: str, k: int | None, mode: str, model: str | None, filter_: str | None,
        min_score: float | None, as_json: bool) -> None:
    """Answer a question from a collection, with citations; the answer is printed as it is written."""
    service = _service()
    options = {"k": k, "mode": mode, "model": model, "filter": _json_option(filter_, "--filter"),
               "min_score": min_score}
    if as_json:
        with service_errors():
            answer = service.answer(collection, question, **options)
        click.echo(_usage_line({**answer.usage, "model": answer.model}), err=True)
        out.print_json(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    with service_errors():
        citations, usage = _stream_answer(service.stream(collection, question, **options))
    for c in citations:
        where = c.source + (f", page {c.page}" if c.page else "")
        click.echo(f"[{c.index}] {where} (chars {c.start_char}-{c.end_char})")
    click.echo(_usage_line(usage), err=True)


def _stream_answer(events) -> tuple[list, dict]:
    """Print the answer's text as it comes; its citations and usage once it is whole."""
    from rag.answer import AnswerCitations, AnswerDelta, AnswerDone, AnswerFailed
    from rag.errors import UpstreamError

    citations: list = []
    usage: dict = {}
    for event in events:
        if isinstance(event, AnswerDelta):
            click.echo(event.text, nl=False)
            sys.stdout.flush()
        elif isinstance(event, AnswerCitations):
            citations = event.citations
        elif isinstance(event, AnswerDone):
            usage = {**event.usage, "model": event.model}
        elif isinstance(event, AnswerFailed):
            click.echo("")
            raise UpstreamError.for_status(event.status, event.message)
    click.echo("")
    return citations, usage


def _usage_line(usage: dict) -> str:
    """What an answer took, in one line: tokens of the answer and of the rewrite, cost, cache."""
    rewrite = usage.get("rewrite") or {}
    completion = usage.get("completion_tokens")
    line = (f"usage: {usage.get('prompt_tokens', 0):,} prompt + "
            f"{'?' if completion is None else format(completion, ',')} completion tokens")
    if usage.get("model"):
        line += f" ({usage['model']})"
    if rewrite.get("total_tokens"):
        line += f", rewrite {rewrite['prompt_tokens']:,} + {rewrite['completion_tokens']:,}"
    cost = usage.get("cost_usd")
    line += "; cost unknown (no cited price for this model)" if cost is None else f"; cost ${cost:.6f}"
    context = usage.get("context") or {}
    if context.get("passages_dropped") or context.get("turns_dropped"):
        line += (f"; left out to fit the window: {context['passages_dropped']} passages, "
                 f"{context['turns_dropped']} earlier messages")
    if usage.get("cached"):
        line += "; replayed from the answer cache"
    return line


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="RAG_HOST")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, envvar="RAG_PORT")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve on a non-loopback address without RAG_API_KEYS (anyone who can reach it can use it).")
def serve(host: str, port: int, insecure_no_auth: bool) -> None:
    """Serve the HTTP API (docs at /schema/swagger)."""
    settings = _settings()
    if not settings.api_keys and not _is_loopback(host) and not insecure_no_auth:
        raise CliError(f"refusing to serve on {host} without auth: set RAG_API_KEYS, or pass --insecure-no-auth")
    # The port first: a busy one fails now, before the app is imported, before the model loads,
    # and before "serving on".
    listening = _listen(host, port)
    import uvicorn

    from api.app import create_app

    with service_errors():
        app = create_app(settings)
    err.print(f"serving on http://{host}:{port} (docs: /schema/swagger)")
    # The app configures logging (RAG_LOG_FORMAT) and logs each request with its id and timings:
    # uvicorn keeps its hands off both (its access lines would print query strings).
    config = uvicorn.Config(app, host=host, port=port, log_level="info", log_config=None, access_log=False,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[listening])


class PortUnavailable(click.ClickException):
    """`rag serve` cannot listen where it was asked to (exit status 5: the machine's configuration)."""

    exit_code = 5


def _listen(host: str, port: int):
    """A socket bound to host:port (listening starts when the server runs), or PortUnavailable."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise PortUnavailable(f"cannot serve on {host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port at once
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = " (another server is using it: stop it, or pass --port)" if e.errno == errno.EADDRINUSE else ""
        raise PortUnavailable(f"cannot serve on {host}:{port}: {e.strerror}{hint}") from None
    return sock


# -- moving data ---------------------------------------------------------------------------------

@main.command("migrate")
@click.option("--to", "target", required=True, metavar="URL",
              help="Database to copy into: postgresql+psycopg://user:pass@host/db, or sqlite:///path.")
@click.option("--collection", "-c", "names", multiple=True, help="Copy only this collection (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"collections\": [...]}.")
def migrate_to(target: str, names: tuple[str, ...], as_json: bool) -> None:
    """Copy collections from this database (RAG_DATABASE_URL, else RAG_HOME's SQLite file) into
    another, vectors and all (nothing is re-embedded), and verify the copy: counts, checksums of
    chunk texts and vectors, and the exact dense top 10 of 100 sampled queries on both sides. The
    hybrid overlap@10 of the same queries through each side's own indexes is reported beside."""
    if "://" not in target:
        raise CliError("--to must be a database URL (postgresql+psycopg://... or sqlite:///...)")
    service = _service()
    with service_errors():
        reports = service.copy_to(target, list(names) or None)
    if as_json:
        out.print_json(json.dumps({"collections": [r.to_dict() for r in reports]}))
    else:
        for r in reports:
            state = "verified" if r.verified else "MISMATCH"
            overlap = "n/a" if r.hybrid_overlap is None else f"{r.hybrid_overlap:.2f}"
            out.print(f"{r.copy.name}: {r.copy.documents} documents, {r.copy.chunks} chunks copied; checksum "
                      f"{r.copy.target_checksum[:16]}; exact top 10 identical for {r.identical_top10}/{r.queries} "
                      f"queries: {state}; hybrid overlap@10 {overlap} (reported, not checked: the engines' "
                      "indexes differ)")
    if not all(r.verified for r in reports):
        raise click.exceptions.Exit(1)


# -- evaluation ----------------------------------------------------------------------------------

@main.command("eval")
@click.option("--beir", "beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv (retrieval quality).")
@click.option("--answers", "answers_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Answer-quality set (JSON, e.g. corpora/wrenfield-solar-answers.json): answer accuracy.")
@collection_option
@click.option("--split", default="test", show_default=True, help="BEIR split.")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True)
@click.option("-k", type=click.IntRange(1, 100), help="Passages per answer (--answers) [default: as rag ask].")
@click.option("--model", help="Answering model for --answers (default: as `rag ask`).")
@click.option("--half", type=click.Choice(["tune", "held-out"]), help="Only this half of the answer set.")
@click.option("--allow-other-documents", is_flag=True,
              help="Ingest the corpus even into a collection that holds documents from elsewhere (they can "
                   "then rank above the data set's own, and stay mixed in).")
@click.option("--json", "as_json", is_flag=True)
def evaluate(beir_dir: Path | None, answers_file: Path | None, collection: str, split: str, mode: str, k: int | None,
             model: str | None, half: str | None, allow_other_documents: bool, as_json: bool) -> None:
    """Measure retrieval quality on a BEIR data set (nDCG@10, Recall@100, MRR@10), or answer
    accuracy on an answer-quality set (per half, with every failure listed).

    A BEIR corpus is ingested first (idempotent: a rerun costs a hash per record), with progress on
    stderr; empty or malformed records are skipped and listed. Exits 1 without a score when nothing
    was ingested, and with its score when a record failed or a skipped record is judged relevant.
    """
    if (beir_dir is None) == (answers_file is None):
        raise CliError("give one of --beir DIR or --answers FILE")
    if answers_file is not None:
        _evaluate_answers(answers_file, collection, mode=mode, k=k, model=model, half=half, as_json=as_json)
        return
    assert beir_dir is not None
    _evaluate_beir(beir_dir, collection, split=split, mode=mode, allow_other_documents=allow_other_documents,
                   as_json=as_json)


def _evaluate_beir(beir_dir: Path, collection: str, *, split: str, mode: str, allow_other_documents: bool,
                   as_json: bool) -> None:
    from rag.evaluation import evaluate as score_runs
    from rag.evaluation import load_qrels, load_queries

    corpus = beir_dir / "corpus.jsonl"
    qrels_path = beir_dir / "qrels" / f"{split}.tsv"
    for needed in (corpus, beir_dir / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise CliError(f"{needed} is missing")
    prefix = f"{corpus.resolve()}#"
    service = _service()
    with service_errors():
        coll = service.open_collection(collection, create=True)
        others = service.sources_outside(collection, prefix, limit=3)
        if others and not allow_other_documents:
            raise CliError(f"collection {collection!r} holds documents from elsewhere ({', '.join(others)}, ...): "
                           f"evaluate into a collection of its own (e.g. -c {beir_dir.name}), or pass "
                           f"--allow-other-documents")
        # Always run the ingest: it is idempotent (unchanged records cost a hash), and an earlier
        # interrupted run must not leave a partial corpus to be scored.
        summary = _ingest_with_progress(service.writer(coll), [corpus])
        _report_files(summary)
        ingested = summary.documents + len(summary.unchanged)
        if summary.documents:
            err.print(f"ingested {summary.documents} documents, {summary.chunks} chunks in {summary.seconds:.0f}s")
        if not ingested:
            raise click.ClickException(f"nothing was ingested from {corpus}: no score") from None
        skipped_ids = {f.source[len(prefix):] for f in summary.skipped if f.source.startswith(prefix)}
        queries = load_queries(beir_dir / "queries.jsonl")
        qrels = {q: j for q, j in load_qrels(qrels_path).items() if q in queries}
        runs = {}
        for qid in qrels:
            hits = service.best_chunk_per_document(coll, queries[qid], documents=100, mode=mode)
            runs[qid] = [str(h.metadata.get("_id", h.source.rsplit("#", 1)[-1])) for h in hits]
    judged_skipped = sorted({d for judged in qrels.values() for d, g in judged.items() if g > 0} & skipped_ids)
    result = {**score_runs(runs, qrels), "mode": mode, "documents": ingested,
              "skipped": [{"source": f.source, "reason": f.reason} for f in summary.skipped],
              "failed": [{"source": f.source, "reason": f.reason} for f in summary.failed]}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(f"{collection} ({split}, {result['queries']} queries, {ingested} documents, {mode}): "
                  f"nDCG@10 {result['ndcg@10']:.4f}  Recall@100 {result['recall@100']:.4f}  "
                  f"MRR@10 {result['mrr@10']:.4f}")
    problems = []
    if summary.failed:
        problems.append(f"{len(summary.failed)} records failed to ingest (listed above)")
    if judged_skipped:
        problems.append(f"skipped records judged relevant in {qrels_path.name}: {', '.join(judged_skipped)} "
                        f"(the score counts them as never found)")
    if problems:
        click.echo(f"Error: the score is not the data set's: {'; '.join(problems)}", err=True)
        sys.exit(1)


def _evaluate_answers(path: Path, collection: str, *, mode: str, k: int | None, model: str | None, half: str | None,
                      as_json: bool) -> None:
    from dataclasses import replace

    from ingest.pipeline import Pipeline
    from rag.answer_quality import HALVES, load_answer_set, run_answer_set
    from rag.service import Service

    # Measured afresh: answers replayed from the answer cache would measure an older answerer.
    with service_errors():
        service = Service(replace(_settings(), answer_cache_entries=0))
    with service_errors():
        answer_set = load_answer_set(path)
        coll = service.open_collection(collection, create=answer_set.corpus is not None)
        if answer_set.corpus is not None:  # idempotent: unchanged files cost a hash
            summary = Pipeline(service.writer(coll)).ingest_paths([answer_set.corpus])
            if summary.failed:
                raise CliError(f"{len(summary.failed)} files of {answer_set.corpus} failed to ingest")
        items = [item for item in answer_set.items if half is None or item.half == half]

        def ask(messages: list[dict[str, str]]):  # noqa: ANN202
            return service.answer(coll, messages=messages, k=k, mode=mode, model=model)

        report = run_answer_set(items, ask)
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    for g in report.failures:
        out.print(f"FAIL {g.item.id} ({g.item.half}): {g.item.question}", markup=False, highlight=False)
        out.print(f"     {g.why}", markup=False, highlight=False)
        out.print(f"     answer: {' '.join(g.answer.split())[:300]}", markup=False, highlight=False)
    for name in HALVES:
        right, asked = report.accuracy(name)
        if asked:
            out.print(f"{name:9} {right}/{asked} correct ({right / asked:.1%})")


if __name__ == "__main__":
    main()
