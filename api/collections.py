"""Collections and their documents."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.errors import path_param as _path_param
from api.openapi import UPSTREAM_ERRORS, InlineSchema, documented, json_schema
from api.responses import (
    CollectionList,
    CollectionOut,
    DocumentAccepted,
    DocumentList,
    DocumentOut,
    DocumentsAccepted,
    DocumentsDeleted,
    DocumentWithText,
)
from api.schemas import CollectionCreate, DocumentsIn
from ingest.loaders import document_from_text, load_bytes
from ingest.queue import IngestQueue
from rag.errors import FilesRejected, IngestFailed, InvalidInput, RagError, UnsupportedFile
from rag.service import Service

Limit = Parameter(ge=1, le=1000, default=100, description="Page size.")
SourceParam = Parameter(default=None, min_length=1, description="Only the document at exactly this source.")
SourcePrefixParam = Parameter(default=None, min_length=1, description=(
    "Only documents whose source starts with this (a folder: `notes/`)."))
MAX_ID = 2**63 - 1  # SQLite's largest integer: a bigger id is a 400, not an overflow
DocumentId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="Document id.")]

# The upload handler reads its body itself (files or JSON), so Litestar cannot describe it.
UPLOAD_BODY = RequestBody(required=True, description="Files to ingest, or documents given as text.", content={
    "multipart/form-data": OpenAPIMediaType(schema=Schema(
        type=OpenAPIType.OBJECT, required=["files"],
        properties={"files": Schema(
            type=OpenAPIType.ARRAY, min_items=1,
            description="The files (any part name: every file part is ingested); the filename's extension "
                        "chooses the loader. A part's `X-Source` header sets that file's source.",
            items=Schema(type=OpenAPIType.STRING, content_media_type="application/octet-stream")),
            "source": Schema(
                type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING, min_length=1),
                description="What identifies each file's document in the collection (e.g. `notes/rides.txt`), "
                            "one per file in the order of the files; a later upload with the same source "
                            "replaces it. Default: the file name.")})),
    "application/json": OpenAPIMediaType(schema=InlineSchema(value=json_schema(DocumentsIn))),
})


class CollectionsController(Controller):
    path = "/collections"
    tags = ["collections"]

    @get(operation_id="listCollections", summary="List collections", sync_to_thread=True, **documented(400))
    def list_collections(self, service: NamedDependency[Service], limit: int = Limit,
                         after: FromQuery[str | None] = None) -> CollectionList:
        rows = [c for c in service.list_collections() if after is None or c.name > after]
        return CollectionList(data=[CollectionOut.from_collection(c) for c in rows[:limit]],
                              has_more=len(rows) > limit)

    # The openai embedder asks the upstream for its dimension when a collection is made with it.
    @post(operation_id="createCollection", summary="Create a collection", sync_to_thread=True,
          status_code=HTTP_201_CREATED, **documented(400, 409, 413, *UPSTREAM_ERRORS))
    def create_collection(self, service: NamedDependency[Service], data: JSONBody[CollectionCreate]) -> CollectionOut:
        c = service.create_collection(data.name, embedder=data.embedder, chunk_size=data.chunk_size,
                                      chunk_overlap=data.chunk_overlap)
        return CollectionOut.from_collection(c)

    @get("/{name:str}", operation_id="getCollection", summary="Show a collection", sync_to_thread=True,
         **documented(404))
    def get_collection(self, service: NamedDependency[Service], name: FromPath[str]) -> CollectionOut:
        return CollectionOut.from_collection(service.get_collection(name, counts=True))

    @delete("/{name:str}", operation_id="deleteCollection", summary="Delete a collection and its documents",
            sync_to_thread=True, status_code=HTTP_204_NO_CONTENT, **documented(404))
    def delete_collection(self, service: NamedDependency[Service], name: FromPath[str]) -> None:
        service.delete_collection(name)


class DocumentsController(Controller):
    path = "/collections/{name:str}/documents"
    tags = ["documents"]

    @post(operation_id="addDocuments", summary="Upload files (multipart) or JSON documents",
          description="Multipart file uploads (each file's source: its part's `X-Source` header, else the "
                      "`source` field in its position, else its file name), or JSON {\"documents\": [{\"text\", "
                      "\"title\", \"source\", \"metadata\"}]}. Each document is `created`, `updated` (the same "
                      "source, new content: replaced) or `unchanged` (skipped). "
                      "Answers 202 with each document's status; with ?wait=true, 201 once "
                      "all are ready or failed. Any unsupported (415) or unreadable (400) file: nothing is ingested. "
                      "With ?wait=true, a failed document answers with the first failure's status "
                      "(`ingest_failed`, every document's status under `documents`).",
          status_code=HTTP_202_ACCEPTED,
          **documented(400, 404, 409, 413, 415, *UPSTREAM_ERRORS, request_body=UPLOAD_BODY, responses={
              HTTP_201_CREATED: ResponseSpec(data_container=DocumentsAccepted, generate_examples=False,
                                             description="With ?wait=true: every document is ready.")}))
    async def add_documents(self, request: Request, service: NamedDependency[Service],
                            ingest_queue: NamedDependency[IngestQueue], name: FromPath[str],
                            wait: FromQuery[bool] = False) -> Response[DocumentsAccepted]:
        collection = await anyio.to_thread.run_sync(service.get_collection, name)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise InvalidInput("the multipart body has no file parts", param="files")
            sources = _sources(files, [v for k, v in form.multi_items() if k == "source" and isinstance(v, str)])
            uploads = [(f.filename, await f.read(), source) for f, source in zip(files, sources, strict=True)]
            docs, bad = await anyio.to_thread.run_sync(_parse_uploads, uploads)
            if bad:
                raise FilesRejected(bad)
        elif content_type.startswith("application/json") or not content_type:
            try:
                body = msgspec.json.decode(await request.body(), type=DocumentsIn)
            except msgspec.ValidationError as e:
                raise InvalidInput(f"invalid body: {e}", param=_path_param(e)) from None
            except msgspec.DecodeError as e:
                raise InvalidInput(f"the body is not valid JSON: {e}", param="body") from None
            docs = [
                document_from_text(
                    d.source or "text:" + hashlib.sha256(d.text.encode()).hexdigest()[:16],
                    d.text, title=d.title, metadata=d.metadata)
                for d in body.documents
            ]
        else:
            raise UnsupportedFile(f"send multipart/form-data files or application/json, not {content_type}")
        accepted = await anyio.to_thread.run_sync(lambda: ingest_queue.submit(collection, docs, wait=wait))
        data = [DocumentAccepted.from_accepted(a) for a in accepted]
        failed = [a for a in accepted if a.status == "failed"]
        if wait and failed:
            first = next((a.failure for a in failed if a.failure is not None), None)
            raise IngestFailed("; ".join(f"{a.source}: {a.error}" for a in failed),
                               first=first or RagError("ingest failed"), documents=msgspec.to_builtins(data))
        return Response(DocumentsAccepted(data=data), status_code=HTTP_201_CREATED if wait else HTTP_202_ACCEPTED)

    @get(operation_id="listDocuments", summary="List documents", sync_to_thread=True, **documented(400, 404))
    def list_documents(self, service: NamedDependency[Service], name: FromPath[str], limit: int = Limit,
                       after: int | None = Parameter(default=None, ge=0, le=MAX_ID,
                                                     description="Last id of the previous page."),
                       source: str | None = SourceParam, source_prefix: str | None = SourcePrefixParam,
                       ) -> DocumentList:
        rows = service.list_documents(name, limit=limit + 1, after=after, source=source, source_prefix=source_prefix)
        return DocumentList(data=[DocumentOut.from_document(d) for d in rows[:limit]], has_more=len(rows) > limit)

    @delete(operation_id="deleteDocuments", summary="Delete documents by source or folder", sync_to_thread=True,
            status_code=HTTP_200_OK,
            description="Exactly one of `source` (the document at that source) or `source_prefix` (every "
                        "document whose source starts with it: a folder such as `notes/`); neither is a 400, "
                        "so a bare DELETE never empties a collection. Answers the ids deleted (none: `[]`).",
            **documented(400, 404))
    def delete_documents(self, service: NamedDependency[Service], name: FromPath[str],
                         source: str | None = SourceParam,
                         source_prefix: str | None = SourcePrefixParam) -> DocumentsDeleted:
        return DocumentsDeleted.from_deleted(
            service.delete_documents_by_source(name, source=source, source_prefix=source_prefix))

    @get("/{document_id:int}", operation_id="getDocument", summary="A document with its extracted text",
         sync_to_thread=True, **documented(400, 404))
    def get_document(self, service: NamedDependency[Service], name: FromPath[str],
                     document_id: DocumentId) -> DocumentWithText:
        return DocumentWithText.from_document(service.get_document(name, document_id))

    @delete("/{document_id:int}", operation_id="deleteDocument", summary="Delete a document",
            sync_to_thread=True, status_code=HTTP_204_NO_CONTENT, **documented(400, 404))
    def delete_document(self, service: NamedDependency[Service], name: FromPath[str], document_id: DocumentId) -> None:
        service.delete_documents(name, [document_id])


SOURCE_HEADER = "x-source"
"""A file part's header naming its source (curl: `-F 'files=@a.txt;headers="X-Source: notes/a.txt"'`)."""


def _sources(files: Sequence[UploadFile], fields: Sequence[str]) -> list[str | None]:
    """Each file's source: its part's X-Source header, else the `source` field in its position,
    else None (its file name). `source` fields, when given, pair with the files one to one."""
    if fields and len(fields) != len(files):
        raise InvalidInput(f"give one source field per file: {len(fields)} source(s) for {len(files)} file(s)",
                           param="source")
    out: list[str | None] = []
    for i, f in enumerate(files):
        header = next((v for k, v in f.headers.items() if k.lower() == SOURCE_HEADER), None)
        source = header if header is not None else (fields[i] if fields else None)
        if source is not None and not source.strip():
            raise InvalidInput(f"the source of file {i + 1} is empty", param="source")
        out.append(source)
    return out


def _parse_uploads(uploads: Sequence[tuple[str | None, bytes, str | None]]
                   ) -> tuple[list, list[tuple[str, RagError]]]:
    docs, bad = [], []
    for filename, data, source in uploads:
        name = filename or "(unnamed file)"
        try:
            docs.extend(load_bytes(name, data, source=source))
        except RagError as e:
            bad.append((source or name, e))
    return docs, bad
