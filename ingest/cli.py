"""The `rag` command line: a thin shell over `rag.service.Service` and `ingest/pipeline`.

Results go to stdout; progress, logs and errors to stderr, so `rag search --json | jq` works.
Exit statuses are `rag.errors.EXIT_CODES`: each service error carries its own (`exit_code`).
"""

from __future__ import annotations

import json
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
from rag.errors import RagError
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
        click.echo(f"Error: {e}", err=True)
        raise click.exceptions.Exit(e.exit_code) from None


def _settings() -> Settings:
    with service_errors():
        return Settings.from_env()


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


collection_option = click.option("--collection", "-c", required=True, envvar="RAG_COLLECTION",
                                 help="Collection name (or RAG_COLLECTION).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag-service")
def main() -> None:
    """Semantic search and question answering over your documents, offline by default.

    Data lives in RAG_HOME (default ./data).
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
    from ingest.pipeline import Pipeline

    service = _service()
    with service_errors():
        coll = service.open_collection(collection, create=True, embedder=embedder, chunk_size=chunk_size,
                                       chunk_overlap=overlap)
        writer = service.writer(coll)
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[docs]} documents, {task.fields[chunks]} chunks, {task.fields[rate]} tokens/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=not err.is_terminal,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("files", total=None, docs=0, chunks=0, rate="-")
            started = time.perf_counter()

            def on_progress(p) -> None:
                elapsed = max(time.perf_counter() - started, 1e-3)
                bar.update(task, total=p.files_total, completed=p.files_done, docs=p.documents, chunks=p.chunks,
                           rate=f"{p.tokens / elapsed:,.0f}")

            summary = Pipeline(writer, on_progress=on_progress).ingest_paths(paths, glob=glob_, prune=prune)
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        for f in summary.failed:
            err.print(f"[red]failed[/red] {f.source}: {f.reason}")
        for f in summary.skipped:
            err.print(f"[yellow]skipped[/yellow] {f.source}: {f.reason}")
        rate = summary.tokens / summary.seconds if summary.seconds else 0
        out.print(
            f"{collection}: {len(summary.added)} added, {len(summary.updated)} updated, "
            f"{len(summary.unchanged)} unchanged, {len(summary.removed)} removed, {len(summary.failed)} failed"
            f" ({summary.chunks} chunks, {summary.tokens:,} tokens in {summary.seconds:.1f}s, {rate:,.0f} tokens/s)"
        )
    if summary.failed:
        sys.exit(1)


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
    table = Table("name", "embedder", "chunking", "documents", "chunks")
    for c in rows:
        table.add_row(c.name, f"{c.embedder.kind}:{c.embedder.model_id}", f"{c.chunk_size}/{c.chunk_overlap}",
                      str(c.documents), str(c.chunks))
    out.print(table)


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


@documents.command("list")
@collection_option
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000)
@click.option("--json", "as_json", is_flag=True)
def list_documents(collection: str, limit: int, as_json: bool) -> None:
    """List the documents of a collection."""
    service = _service()
    with service_errors():
        docs = service.list_documents(collection, limit=limit)
    if as_json:
        out.print_json(json.dumps({"data": [d.to_dict() for d in docs]}))
        return
    table = Table("id", "source", "status", "chunks", "updated")
    for d in docs:
        table.add_row(str(d.id), d.source, d.status + (f": {d.error}" if d.error else ""), str(d.chunks), d.updated_at)
    out.print(table)


@documents.command("delete")
@collection_option
@click.argument("document_ids", nargs=-1, type=int, required=True)
def delete_documents(collection: str, document_ids: tuple[int, ...]) -> None:
    """Delete documents by id."""
    service = _service()
    with service_errors():
        deleted = service.delete_documents(collection, list(document_ids))
    err.print(f"deleted {len(deleted.document_ids)} document(s), {deleted.chunks} chunk(s)")


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
@click.option("--json", "as_json", is_flag=True, help="Print {\"hits\": [...]}.")
def search(query: str, collection: str, k: int, mode: str, filter_: str | None, as_json: bool) -> None:
    """Search a collection."""
    service = _service()
    with service_errors():
        hits = service.search(collection, query, k=k, mode=mode, filter=_json_option(filter_, "--filter"))
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
@click.option("-k", type=click.IntRange(1, 100), default=5, show_default=True, help="Passages to answer from.")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True)
@click.option("--model", help="extractive, or a chat model (needs OPENAI_API_KEY); default: RAG_CHAT_MODEL "
                              "with a key, else extractive.")
@click.option("--json", "as_json", is_flag=True, help="Print {answer, citations, model, usage}.")
def ask(question: str, collection: str, k: int, mode: str, model: str | None, as_json: bool) -> None:
    """Answer a question from a collection, with citations."""
    service = _service()
    with service_errors():
        answer = service.answer(collection, question, k=k, mode=mode, model=model)
    click.echo(_usage_line(answer.usage), err=True)
    if as_json:
        out.print_json(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    out.print(answer.answer, markup=False, highlight=False)
    for c in answer.citations:
        where = c.source + (f", page {c.page}" if c.page else "")
        out.print(f"[{c.index}] {where} (chars {c.start_char}-{c.end_char})", markup=False, highlight=False)


def _usage_line(usage: dict) -> str:
    """What an answer took, in one line: tokens of the answer and of the rewrite, cost, cache."""
    rewrite = usage.get("rewrite") or {}
    completion = usage.get("completion_tokens")
    line = (f"usage: {usage.get('prompt_tokens', 0):,} prompt + "
            f"{'?' if completion is None else format(completion, ',')} completion tokens")
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
    import uvicorn

    from api.app import create_app

    settings = _settings()
    if not settings.api_keys and not _is_loopback(host) and not insecure_no_auth:
        raise CliError(f"refusing to serve on {host} without auth: set RAG_API_KEYS, or pass --insecure-no-auth")
    with service_errors():
        app = create_app(settings)
    err.print(f"serving on http://{host}:{port} (docs: /schema/swagger)")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


# -- moving data ---------------------------------------------------------------------------------

@main.command("migrate")
@click.option("--to", "target", required=True, metavar="URL",
              help="Database to copy into: postgresql+psycopg://user:pass@host/db, or sqlite:///path.")
@click.option("--collection", "-c", "names", multiple=True, help="Copy only this collection (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"collections\": [...]}.")
def migrate_to(target: str, names: tuple[str, ...], as_json: bool) -> None:
    """Copy collections from this database (RAG_DATABASE_URL, else RAG_HOME's SQLite file) into
    another, vectors and all (nothing is re-embedded), and verify the copy: counts, checksums of
    chunk texts and vectors, and the exact dense top 10 of 100 sampled queries on both sides."""
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
            out.print(f"{r.copy.name}: {r.copy.documents} documents, {r.copy.chunks} chunks copied; checksum "
                      f"{r.copy.target_checksum[:16]}; exact top 10 identical for {r.identical_top10}/{r.queries} "
                      f"queries: {state}")
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
@click.option("-k", type=click.IntRange(1, 100), default=5, show_default=True, help="Passages per answer (--answers).")
@click.option("--model", help="Answering model for --answers (default: as `rag ask`).")
@click.option("--half", type=click.Choice(["tune", "held-out"]), help="Only this half of the answer set.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(beir_dir: Path | None, answers_file: Path | None, collection: str, split: str, mode: str, k: int,
             model: str | None, half: str | None, as_json: bool) -> None:
    """Measure retrieval quality on a BEIR data set (nDCG@10, Recall@100, MRR@10), or answer
    accuracy on an answer-quality set (per half, with every failure listed)."""
    if (beir_dir is None) == (answers_file is None):
        raise CliError("give one of --beir DIR or --answers FILE")
    if answers_file is not None:
        _evaluate_answers(answers_file, collection, mode=mode, k=k, model=model, half=half, as_json=as_json)
        return
    assert beir_dir is not None
    from ingest.pipeline import Pipeline
    from rag.evaluation import evaluate as score_runs
    from rag.evaluation import load_qrels, load_queries

    qrels_path = beir_dir / "qrels" / f"{split}.tsv"
    for needed in (beir_dir / "corpus.jsonl", beir_dir / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise CliError(f"{needed} is missing")
    service = _service()
    with service_errors():
        coll = service.open_collection(collection, create=True)
        # Always run the ingest: it is idempotent (unchanged records cost a hash), and an earlier
        # interrupted run must not leave a partial corpus to be scored.
        summary = Pipeline(service.writer(coll)).ingest_paths([beir_dir / "corpus.jsonl"])
        if summary.added or summary.updated:
            err.print(f"ingested {len(summary.added) + len(summary.updated)} documents, {summary.chunks} chunks "
                      f"in {summary.seconds:.0f}s")
        queries = load_queries(beir_dir / "queries.jsonl")
        qrels = {q: j for q, j in load_qrels(qrels_path).items() if q in queries}
        runs = {}
        for qid in qrels:
            hits = service.best_chunk_per_document(coll, queries[qid], documents=100, mode=mode)
            runs[qid] = [str(h.metadata.get("_id", h.source.rsplit("#", 1)[-1])) for h in hits]
    result = {**score_runs(runs, qrels), "mode": mode}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(f"{collection} ({split}, {result['queries']} queries, {mode}): nDCG@10 {result['ndcg@10']:.4f}  "
                  f"Recall@100 {result['recall@100']:.4f}  MRR@10 {result['mrr@10']:.4f}")


def _evaluate_answers(path: Path, collection: str, *, mode: str, k: int, model: str | None, half: str | None,
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
