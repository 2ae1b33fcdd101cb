"""The /v1 passthrough routes: the real app on uvicorn, forwarding to the OpenAI test server.

Both ends are real HTTP servers on 127.0.0.1, so streaming in both directions is what is tested,
not a test client's buffering.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import time

import httpx
import openai
import pytest
from support.openai_server import ServerThread, fake_image, fake_speech, fake_transcript

from api.app import create_app
from rag.config import Settings

CLIENT_KEY = "client-key"
UPSTREAM_KEY = "sk-upstream-key"


@pytest.fixture
def start_service(openai_server, rag_env):
    """Start the app on uvicorn with these settings (upstream: the test server); its base URL."""
    threads: list[ServerThread] = []

    def start(**overrides) -> str:
        values = {"home": rag_env, "openai_api_key": UPSTREAM_KEY, "openai_base_url": openai_server.url,
                  "openai_timeout_s": 10.0, "api_keys": (CLIENT_KEY,)}
        app = create_app(Settings(**(values | overrides)), warm_up=False)  # no local model needed here
        thread = ServerThread(app, lifespan="on").start()
        threads.append(thread)
        return f"http://127.0.0.1:{thread.port}"

    yield start
    for thread in threads:
        thread.stop()


@pytest.fixture
def service(start_service) -> str:
    return start_service()


@pytest.fixture
def http(service):
    with httpx.Client(base_url=service, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=30) as client:
        yield client


@pytest.fixture
def sdk(service) -> openai.OpenAI:
    return openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=0, timeout=30)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# ---------------------------------------------------------------- bytes, headers, query


def test_a_20_mb_upload_arrives_byte_for_byte_with_the_services_key(openai_server, http):
    data = random.Random(7).randbytes(20 * 1024 * 1024)
    body = multipart({"purpose": "assistants"}, {"file": ("big.bin", data)})
    started = time.monotonic()
    response = http.post("/v1/files?source=test&note=a%2Fb", content=body, headers={
        "content-type": "multipart/form-data; boundary=b0undary",
        "openai-beta": "assistants=v2", "idempotency-key": "upload-1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(data)
    (received,) = openai_server.requests
    assert hashlib.sha256(received.body).hexdigest() == hashlib.sha256(body).hexdigest()
    assert received.header("content-length") == str(len(body))
    assert received.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert [v for k, v in received.headers if k == "authorization"] == [f"Bearer {UPSTREAM_KEY}"]
    assert received.header("openai-beta") == "assistants=v2"
    assert received.header("idempotency-key") == "upload-1"
    assert received.header("content-type") == "multipart/form-data; boundary=b0undary"
    assert received.query == "source=test&note=a%2Fb"
    assert response.headers["x-request-id"].startswith("req_test")
    print(f"\n20 MB upload through the passthrough: {elapsed:.2f} s")

    started = time.monotonic()
    download = http.get(f"/v1/files/{response.json()['id']}/content")
    print(f"20 MB download through the passthrough: {time.monotonic() - started:.2f} s")
    assert download.status_code == 200 and download.content == data


def test_an_upload_is_streamed_upstream_before_the_caller_has_finished(openai_server, http):
    sent_last_at = 0.0

    def body():
        nonlocal sent_last_at
        yield b"x" * (1024 * 1024)
        time.sleep(0.5)
        sent_last_at = time.monotonic()
        yield b"y" * 1024

    response = http.post("/v1/images/variations", content=body(),
                         headers={"content-type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400  # not multipart at all: the test server says so
    (received,) = openai_server.requests
    assert len(received.body) == 1024 * 1024 + 1024
    assert received.header("transfer-encoding") == "chunked"
    assert received.started_at < sent_last_at  # upstream had the request before the body was done


def test_query_strings_pass_unchanged(openai_server, http):
    query = "limit=2&order=asc&odd=a%2Fb%20c+d&empty=&x=%E2%9C%93"
    response = http.get(f"/v1/files?{query}")
    assert response.status_code == 200
    assert openai_server.requests[0].query == query


def test_hop_by_hop_and_caller_credentials_are_not_forwarded(openai_server, http):
    response = http.get("/v1/assistants", headers={
        "connection": "keep-alive, x-hop", "x-hop": "1", "keep-alive": "timeout=5", "te": "trailers",
        "cookie": "session=secret", "openai-organization": "org-caller", "x-custom": "kept",
        "openai-beta": "assistants=v2"})
    assert response.status_code == 200
    received = openai_server.requests[0]
    names = {k for k, _ in received.headers}
    assert not names & {"x-hop", "keep-alive", "te", "cookie", "openai-organization"}
    assert received.header("x-custom") == "kept" and received.header("openai-beta") == "assistants=v2"
    assert received.header("authorization") == f"Bearer {UPSTREAM_KEY}"


def test_routes_outside_the_table_are_not_forwarded(openai_server, http):
    assert http.put("/v1/files").status_code == 405
    missing = http.get("/v1/fine_tuning/jobs")
    assert missing.status_code == 404 and "error" in missing.json()
    assert openai_server.requests == []


def test_the_services_own_auth_guards_the_passthrough(openai_server, service):
    response = httpx.get(f"{service}/v1/files")
    assert response.status_code == 401
    wrong = httpx.get(f"{service}/v1/files", headers={"authorization": f"Bearer {UPSTREAM_KEY}"})
    assert wrong.status_code == 401
    assert openai_server.requests == []


def test_body_over_the_upload_limit_is_413(openai_server, start_service):
    service = start_service(max_upload_mb=1)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/octet-stream"}
    announced = httpx.post(f"{service}/v1/files", content=b"x" * (1024 * 1024 + 1), headers=headers)
    assert announced.status_code == 413
    assert "RAG_MAX_UPLOAD_MB" in announced.json()["error"]["message"]
    assert openai_server.requests == []

    def chunks():
        for _ in range(3):
            yield b"x" * (512 * 1024)

    chunked = httpx.post(f"{service}/v1/files", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert "RAG_MAX_UPLOAD_MB" in chunked.json()["error"]["message"]
    assert openai_server.requests == []  # the upstream never saw a complete request


# ---------------------------------------------------------------- streaming back


def _events(lines) -> list[str]:
    return [line for line in lines if line]


def test_the_first_event_reaches_the_caller_before_the_upstream_sends_its_last(openai_server, service):
    openai_server.set_reply("streamed through the passthrough")
    gate = openai_server.hold_stream(after=1)  # upstream sends one event, then waits for the gate
    with httpx.stream("POST", f"{service}/v1/responses", timeout=10,
                      headers={"authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": "gpt-5.4-mini", "input": "hi", "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        # A buffering proxy would block here until the hold times out (30 s) and the read
        # timeout (10 s) failed the test.
        first = [next(lines), next(lines)]
        assert not gate.is_set()  # the upstream is still holding back every later event
        gate.set()
        rest = _events(lines)
    assert first[0] == "event: response.created"
    assert rest[-2] == "event: response.completed"
    assert json.loads(rest[-1][len("data: "):])["response"]["output"][0]["content"][0]["text"] == \
        "streamed through the passthrough"


# ---------------------------------------------------------------- the official SDK through the service


def test_responses_plain_stream_and_follow_ups(openai_server, sdk):
    openai_server.set_reply("Plain answer.", "Streamed answer here.")
    response = sdk.responses.create(model="gpt-5.4-mini", input="Say something.")
    assert response.output_text == "Plain answer."
    sent = openai_server.requests[0]
    assert (sent.path, sent.json()["input"]) == ("/v1/responses", "Say something.")
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"

    events = list(sdk.responses.create(model="gpt-5.4-mini", input="Stream it.", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Streamed answer here."
    assert events[-1].response.output_text == "Streamed answer here."

    assert sdk.responses.retrieve(response.id).id == response.id
    items = sdk.responses.input_items.list(response.id)
    assert items.data[0].content[0].text == "Say something."
    assert sdk.responses.delete(response.id) is None
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_conversations(openai_server, sdk):
    conversation = sdk.conversations.create(metadata={"topic": "test"})
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "test"}
    assert sdk.conversations.retrieve(conversation.id).id == conversation.id
    added = sdk.conversations.items.create(conversation.id, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}])
    assert len(added.data) == 1
    assert [i.id for i in sdk.conversations.items.list(conversation.id)] == [added.data[0].id]


@pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # the SDK marks Assistants retired
def test_assistants_threads_and_a_streamed_run(openai_server, sdk):
    assistant = sdk.beta.assistants.create(model="gpt-5.4-mini", name="Helper", instructions="Be brief.")
    assert openai_server.requests[-1].header("openai-beta") == "assistants=v2"
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "What is RAG?"}])
    openai_server.set_reply("Retrieval-augmented generation.")
    events = list(sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    names = [e.event for e in events]
    assert names[0] == "thread.run.created" and names[-1] == "thread.run.completed"
    text = "".join(e.data.delta.content[0].text.value for e in events if e.event == "thread.message.delta")
    assert text == "Retrieval-augmented generation."
    run = events[-1].data
    assert sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"
    steps = sdk.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    assert steps.data[0].type == "message_creation"
    messages = sdk.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    assert sdk.beta.assistants.delete(assistant.id).deleted


def test_files_create_list_content_delete(openai_server, sdk):
    created = sdk.files.create(file=("notes.txt", b"hello passthrough"), purpose="assistants")
    assert created.bytes == len(b"hello passthrough") and created.filename == "notes.txt"
    assert b"hello passthrough" in openai_server.requests[0].body
    listed = sdk.files.list(limit=2, order="asc")
    assert openai_server.requests[-1].query == "limit=2&order=asc"
    assert [f.id for f in listed.data] == [created.id]
    assert sdk.files.content(created.id).read() == b"hello passthrough"
    assert sdk.files.delete(created.id).deleted


def test_uploads_in_parts(openai_server, sdk):
    upload = sdk.uploads.create(bytes=6, filename="parts.txt", mime_type="text/plain", purpose="assistants")
    first = sdk.uploads.parts.create(upload.id, data=b"abc")
    second = sdk.uploads.parts.create(upload.id, data=b"def")
    done = sdk.uploads.complete(upload.id, part_ids=[first.id, second.id])
    assert done.status == "completed" and done.file.bytes == 6
    assert sdk.files.content(done.file.id).read() == b"abcdef"


def test_images_generate_and_edit_with_a_file(openai_server, sdk):
    generated = sdk.images.generate(model="image-model-under-test", prompt="a lighthouse")
    assert base64.b64decode(generated.data[0].b64_json) == fake_image(b"a lighthouse")
    picture = random.Random(3).randbytes(50_000)
    edited = sdk.images.edit(model="image-model-under-test", image=("in.png", picture, "image/png"),
                             prompt="add a boat")
    assert base64.b64decode(edited.data[0].b64_json) == fake_image(b"add a boat" + hashlib.sha256(picture).digest())
    assert picture in openai_server.requests[-1].body


def test_audio_speech_bytes_are_equal(openai_server, sdk):
    speech = sdk.audio.speech.create(model="tts-under-test", voice="alloy", input="Hello there.")
    assert speech.read() == fake_speech("Hello there.")
    assert speech.response.headers["content-type"] == "audio/mpeg"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations retired
def test_audio_transcriptions_and_translations(openai_server, sdk):
    audio = random.Random(5).randbytes(30_000)
    expected = fake_transcript(audio)

    def transcribe(**options):
        return sdk.audio.transcriptions.create(model="transcribe-under-test", file=("a.wav", audio), **options)

    assert transcribe().text == expected
    assert transcribe(response_format="text").strip() == expected
    assert expected in transcribe(response_format="srt")
    assert transcribe(response_format="vtt").startswith("WEBVTT")
    assert transcribe(response_format="verbose_json").segments[0].text == expected
    events = list(transcribe(stream=True))
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == expected
    assert events[-1].type == "transcript.text.done" and events[-1].text == expected
    assert sdk.audio.translations.create(model="transcribe-under-test", file=("a.wav", audio)).text == expected


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("status", "error"), [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError),
    (429, openai.RateLimitError), (500, openai.InternalServerError),
])
def test_upstream_errors_keep_status_and_body(openai_server, sdk, http, status, error):
    openai_server.fail_next(status)
    with pytest.raises(error) as caught:
        sdk.files.list()
    assert caught.value.status_code == status
    assert caught.value.request_id.startswith("req_test")  # the upstream's id, passed along
    assert caught.value.body["message"] and caught.value.body["type"]

    raw = b'{"error": {"message": "exact bytes", "type": "x", "param": null, "code": "c"}}  '
    openai_server.fail_next(status, body=raw)
    response = http.get("/v1/files")
    assert (response.status_code, response.content) == (status, raw)
    assert len(openai_server.requests) == 2  # never retried by the service


def test_unreachable_upstream_is_502(start_service):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = start_service(openai_base_url=f"http://127.0.0.1:{port}/v1")
    sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.files.list()
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error" and "OPENAI_BASE_URL" in caught.value.body["message"]


def test_no_key_is_503_naming_the_variable(openai_server, start_service):
    service = start_service(openai_api_key=None)
    response = httpx.get(f"{service}/v1/files", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]
    assert openai_server.requests == []


def test_slow_upstream_is_504(openai_server, start_service):
    service = start_service(openai_timeout_s=0.5)
    openai_server.slow_next(3.0)
    started = time.monotonic()
    response = httpx.post(f"{service}/v1/responses", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                          json={"model": "gpt-5.4-mini", "input": "hi"})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    assert time.monotonic() - started < 2.5
