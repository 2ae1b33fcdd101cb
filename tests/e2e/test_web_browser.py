"""The page at `/` and the docs page in a real browser: Debian's chromium through Playwright,
against a real `rag serve` on 127.0.0.1 with the sample corpus, RAG_API_KEYS set, and the tests'
OpenAI server answering questions (5 deltas 100 ms apart).

Each test opens a fresh browser context (empty storage: it meets the key prompt), fails if the page
requests any other host, and saves screenshots to the folder printed at the start.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.asgi import session_server
from support.browser import ServeProcess, chromium, watch_foreign_requests
from support.openai_server import FakeOpenAI
from support.prices import ROW, table_file
from support.sse import ask_events

from rag.tokens import count_chat_tokens, encoding_for_model

pytestmark = pytest.mark.slow

API_KEY = "browser-secret"
QUESTION = "What quorum does a general meeting need?"
REPLY = "Ten members are a quorum [1]."
"""Five words: the OpenAI test server streams them as five deltas."""
HOSTILE_NAME = "<img src=x onerror=window.pwned=1>.txt"
HOSTILE_TEXT = ("<script>window.pwned=1</script> Zeppelin notes\n\n"
                "🙂🙂 Emoji first: the zeppelin hangar <b>opens</b> at dawn. <script>window.pwned=1</script>\n")
EMOJI_TEXT = ("Emoji log\n\n" + "🙂 The orchard keeps its ledger in the barn. " * 120
              + "\n\nThe xylophone quartet 🎉 rehearses on Thursdays in the granary.\n")
"""Long enough for several chunks: the one about the xylophone starts after 120 emoji (240 UTF-16 units)."""


@pytest.fixture(scope="module")
def screens(tmp_path_factory, request) -> Path:
    folder = tmp_path_factory.mktemp("web-screens")
    say(request, f"screenshots: {folder}")
    return folder


def say(request, line: str) -> None:
    """A line on the terminal, past pytest's capture."""
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        request.config.pluginmanager.get_plugin("terminalreporter").write_line(line)


@pytest.fixture(scope="module")
def upstream(request) -> FakeOpenAI:
    """The session's OpenAI test server: its URL is the service's OPENAI_BASE_URL."""
    return next(session_server(request, "openai", FakeOpenAI))


@pytest.fixture(scope="module")
def server(seeded_home, tmp_path_factory, upstream):
    home = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(seeded_home, home)
    # A price for the chat model (made up, cited as such), so the page has a cost to show.
    prices = table_file(tmp_path_factory.mktemp("web-prices"), ROW)
    running = ServeProcess(home, tmp_path_factory.mktemp("web-log") / "serve.log", RAG_API_KEYS=API_KEY,
                           OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=upstream.url, RAG_PRICE_TABLE=str(prices))
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def offline_server(seeded_home, tmp_path_factory):
    """`rag serve` with no chat model and no keys: the extractive answerer, whose answers are cached."""
    home = tmp_path_factory.mktemp("web-offline") / "home"
    shutil.copytree(seeded_home, home)
    running = ServeProcess(home, tmp_path_factory.mktemp("web-offline-log") / "serve.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    foreign = watch_foreign_requests(context, server.url)
    yield context
    context.close()
    assert not foreign, f"the page requested other hosts: {foreign}"


def open_app(context, server, key: str = API_KEY):
    """The page at `/`, past the key prompt, with the collections listed."""
    page = context.new_page()
    page.goto(server.url + "/")
    page.locator("#key-dialog").wait_for(state="visible")
    page.fill("#key-input", key)
    page.keyboard.press("Enter")
    page.locator("#collections li").first.wait_for()
    return page


@pytest.fixture
def app(context, server, openai_server):
    openai_server.stream_pause_s = 0.1
    openai_server.set_reply(REPLY)
    return open_app(context, server)


def shot(page, screens: Path, name: str) -> None:
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def test_the_key_prompt_asks_once_and_sends_the_key_only_in_authorization(context, server, screens):
    page = context.new_page()
    sent = []
    page.on("request", lambda r: sent.append(r))
    page.goto(server.url + "/")
    page.locator("#key-dialog").wait_for(state="visible")
    shot(page, screens, "01-key-prompt")
    page.fill("#key-input", "wrong")
    page.keyboard.press("Enter")
    page.get_by_text("That key was refused").wait_for()
    shot(page, screens, "02-key-refused")
    page.fill("#key-input", API_KEY)
    page.keyboard.press("Enter")
    page.locator("#collections li", has_text="wren").wait_for()
    assert page.evaluate("sessionStorage.getItem('rag.apiKey')") == API_KEY
    assert page.evaluate("localStorage.getItem('rag.apiKey')") is None
    assert all(API_KEY not in r.url for r in sent)
    assert any(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in sent)
    page.reload()
    page.locator("#collections li", has_text="wren").wait_for()
    assert not page.locator("#key-dialog").is_visible()  # kept for the tab: asked once


def test_upload_a_file_and_see_it_ready(app, screens):
    page = app
    page.set_input_files("#file-input", files=[{"name": "tidal-notes.txt", "mimeType": "text/plain",
                                                 "buffer": b"Tidal notes.\n\nThe lagoon turbine spins twice a day.\n"}])
    row = page.locator("#uploads li", has_text="tidal-notes.txt")
    row.locator(".status.ready").wait_for(timeout=60_000)
    page.locator("#documents li", has_text="tidal-notes.txt").wait_for()
    shot(page, screens, "03-uploaded")
    with page.expect_request(lambda r: "source_prefix=tidal" in r.url):  # the server filters
        page.fill("#doc-filter", "tidal")
    expect(page.locator("#documents li")).to_have_count(1)
    expect(page.locator("#uploads li", has_text="tidal-notes.txt")).to_contain_text("created")
    page.locator("#documents li", has_text="tidal-notes.txt").get_by_role("button", name="Delete tidal-notes.txt").click()
    expect(page.locator("#documents li")).to_have_count(0)


def test_a_file_dropped_on_the_drop_zone_is_uploaded(app):
    page = app
    transfer = page.evaluate_handle("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["Dropped notes.\\n\\nThe weir gate opens at noon.\\n"], "dropped.txt", {type: "text/plain"}));
        return data;
    }""")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    page.locator("#uploads li", has_text="dropped.txt").locator(".status.ready").wait_for(timeout=60_000)
    page.locator("#documents li", has_text="dropped.txt").wait_for()


def test_search_shows_hits_with_their_scores(app, screens):
    page = app
    page.fill("#query", "general meeting quorum")
    page.select_option("#mode", "hybrid")
    page.fill("#k", "3")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#hits li.hit")).to_have_count(3)
    first = page.locator("#hits li.hit").first.inner_text()
    assert "score" in first and "dense" in first and "lexical" in first
    shot(page, screens, "04-search")


def test_the_search_flow_completes_with_the_keyboard_alone(app):
    page = app
    page.keyboard.press("Tab")  # the first stop: the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to search"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "query"
    page.keyboard.type("solar panels")
    page.keyboard.press("Enter")
    page.locator("#hits li.hit").first.wait_for()


def test_ask_streams_the_answer_links_citations_and_keeps_the_conversation(app, screens, openai_server):
    page = app
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => {
            const a = document.querySelector('#thread .answer');
            if (a) window.seen.push(a.textContent);
        }).observe(document.getElementById('thread'), {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("#question", QUESTION)
    with page.expect_response(lambda r: r.url.endswith("/ask")) as asked:
        page.keyboard.press("Enter")
    page.locator("#thread .answer[data-done]").wait_for()
    seen = [s for s in page.evaluate("window.seen") if s]
    assert seen[-1] == REPLY
    assert any(0 < len(s) < len(REPLY) and REPLY.startswith(s) for s in seen), seen  # partial text first
    events = ask_events(asked.value.text())
    done = next(data for name, data in events if name == "done")
    assert done["model"] == ROW["model"] and done["usage"]["cost_usd"] > 0
    usage = page.locator("#thread .usage").first.inner_text()
    assert (f"{done['usage']['prompt_tokens']} prompt tokens · {done['usage']['completion_tokens']} completion tokens"
            in usage)
    assert f"cost ${done['usage']['cost_usd']:.6f}" in usage and "cached" not in usage
    shot(page, screens, "05-answer")

    citation = next(data for name, data in events if name == "citations")[0]
    page.locator("#thread .answer a.cite").first.click()
    mark = page.locator("#viewer mark")
    mark.wait_for()
    assert mark.inner_text() == citation["quote"]
    assert mark.evaluate("m => { const r = m.getBoundingClientRect(); const v = m.closest('pre').getBoundingClientRect();"
                         " return r.top >= v.top && r.bottom <= v.bottom; }")  # scrolled into view
    assert f"characters {citation['start_char']}–{citation['end_char']}" in page.inner_text("#viewer-meta")
    shot(page, screens, "06-citation")
    page.click("#viewer-close")

    # A follow-up costs the service one short rewrite call (a standalone question to retrieve
    # for), then the answer, which the chat model writes seeing the conversation so far.
    standalone = "What notice must be given for a general meeting?"
    openai_server.set_reply(standalone, "It also needs notice [1].")
    asked_before = len(openai_server.requests_to("/v1/chat/completions"))
    page.fill("#question", "And what notice must be given?")
    with page.expect_request(lambda r: r.url.endswith("/ask")) as follow_up:
        page.keyboard.press("Enter")
    page.locator("#thread .answer[data-done]").nth(1).wait_for()
    body = json.loads(follow_up.value.post_data)
    assert body["messages"] == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": REPLY},
                                {"role": "user", "content": "And what notice must be given?"}]
    assert page.locator("#thread .answer").nth(1).inner_text() == "It also needs notice [1]."
    rewrite, answered = [r.json()["messages"] for r in openai_server.requests_to("/v1/chat/completions")[asked_before:]]
    assert "And what notice must be given?" in json.dumps(rewrite)
    assert {"role": "user", "content": QUESTION} in answered and {"role": "assistant", "content": REPLY} in answered
    assert answered[-1]["content"].endswith("Question: And what notice must be given?")
    # The rewrite's tokens are counted under the answer, and priced with it.
    follow_up_usage = page.locator("#thread .usage").nth(1).inner_text()
    rewrite_tokens = count_chat_tokens(rewrite, ROW["model"]) + len(encoding_for_model(ROW["model"]).encode(standalone))
    assert f"{rewrite_tokens} rewrite tokens" in follow_up_usage and "cost $" in follow_up_usage
    shot(page, screens, "07-follow-up")


def test_hostile_file_name_and_text_show_literally_and_the_span_after_an_emoji_highlights_exactly(app, screens):
    page = app
    page.set_input_files("#file-input", files=[{"name": HOSTILE_NAME, "mimeType": "text/plain",
                                                 "buffer": HOSTILE_TEXT.encode()}])
    page.locator("#uploads li .status.ready").wait_for(timeout=60_000)
    page.locator("#documents li", has_text=HOSTILE_NAME).first.wait_for()
    page.fill("#query", "zeppelin hangar")
    page.select_option("#mode", "lexical")
    page.click("#search-form button[type=submit]")
    hit = page.locator("#hits li.hit").first
    hit.wait_for()
    assert "<script>" in hit.inner_text()
    hit.locator("button.link").click()
    page.locator("#viewer mark").wait_for()
    shown = page.inner_text("#viewer-text")
    assert "<script>window.pwned=1</script>" in shown and "🙂🙂" in shown
    assert page.inner_text("#viewer mark") == hit.locator(".snippet").inner_text()
    shot(page, screens, "08-hostile")
    assert page.evaluate("window.pwned") is None
    assert page.locator("#documents img, #hits img, #viewer img, #uploads img, script:not([src])").count() == 0


def test_a_span_after_emoji_highlights_exactly(app, screens):
    page = app
    page.set_input_files("#file-input", files=[{"name": "emoji-log.txt", "mimeType": "text/plain",
                                                 "buffer": EMOJI_TEXT.encode()}])
    page.locator("#uploads li", has_text="emoji-log.txt").locator(".status.ready").wait_for(timeout=60_000)
    page.fill("#query", "xylophone quartet")
    page.select_option("#mode", "lexical")
    with page.expect_response(lambda r: r.url.endswith("/search")) as searched:
        page.click("#search-form button[type=submit]")
    hit = searched.value.json()["hits"][0]
    assert hit["source"].endswith("emoji-log.txt") and hit["start_char"] > 120
    page.locator("#hits li.hit button.link").first.click()
    mark = page.locator("#viewer mark")
    mark.wait_for()
    # The hit's text is the document's text[start_char:end_char], counted in code points.
    assert mark.inner_text() == hit["text"]
    assert "xylophone" in hit["text"]
    shot(page, screens, "09-emoji-span")


def test_collection_create_and_choice_survive_a_reload(app, server):
    page = app
    page.fill("#new-collection", "zz-notes")
    page.keyboard.press("Enter")
    page.locator("#collections li", has_text="zz-notes").wait_for()
    assert page.input_value("#collection") == "zz-notes"
    page.reload()
    page.locator("#collections li", has_text="zz-notes").wait_for()
    assert page.input_value("#collection") == "zz-notes"
    page.select_option("#collection", "wren")


def test_the_pages_writes_carry_its_own_origin_and_pass(app, server):
    page = app
    writes = []
    page.on("request", lambda r: writes.append(r) if r.method in ("POST", "DELETE") else None)
    page.set_input_files("#file-input", files=[{"name": "origin-notes.txt", "mimeType": "text/plain",
                                                 "buffer": b"Origin notes.\n\nThe kiln fires on Sundays.\n"}])
    page.locator("#uploads li", has_text="origin-notes.txt").locator(".status.ready").wait_for(timeout=60_000)
    page.locator("#documents li", has_text="origin-notes.txt").get_by_role(
        "button", name="Delete origin-notes.txt").click()
    expect(page.locator("#documents li", has_text="origin-notes.txt")).to_have_count(0)
    assert {r.method for r in writes} == {"POST", "DELETE"}
    # Chromium sends Origin on every POST and DELETE: the service's own, which the guard lets through.
    assert {r.all_headers().get("origin") for r in writes} == {server.url}
    assert all(r.response().status < 300 for r in writes)


EVIL_PAGE = """<!doctype html><title>elsewhere</title><script>
for (const body of ['{"name": "csrf-plain"}']) {
  fetch("%(target)s/collections", {method: "POST", mode: "no-cors", body, headers: {"content-type": "text/plain"}})
    .then(() => { document.title = "sent"; }, () => { document.title = "sent"; });
}
</script>"""


def test_a_page_of_another_origin_cannot_write(browser, server):
    import http.server
    import threading

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            body = (EVIL_PAGE % {"target": server.url}).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        statuses = []
        page.on("response", lambda r: statuses.append(r.status) if r.url.startswith(server.url) else None)
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        expect(page).to_have_title("sent")
        assert statuses == [403]  # refused for its Origin, before the key is even looked at
    finally:
        context.close()
        evil.shutdown()
    import httpx

    listed = httpx.get(f"{server.url}/collections", headers={"authorization": f"Bearer {API_KEY}"}).json()["data"]
    assert "csrf-plain" not in [c["name"] for c in listed]


def test_at_phone_size_nothing_scrolls_sideways_and_every_control_has_a_name(browser, server, screens):
    context = browser.new_context(viewport={"width": 375, "height": 667})
    foreign = watch_foreign_requests(context, server.url)
    page = open_app(context, server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, button, a, textarea')]
        .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length) || e.textContent.trim()))
        .map(e => e.outerHTML)""")
    assert unnamed == []
    shot(page, screens, "10-phone")
    context.close()
    assert not foreign


def test_the_docs_page_lists_the_operations(context, server, screens):
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/schema/swagger")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock-summary", has_text="/collections/{name}/search").count() == 1
    assert page.locator(".opblock").count() >= 15
    assert "Unable to render" not in page.inner_text("body")
    shot(page, screens, "11-docs")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_time_to_first_token_and_bytes_transferred(context, server, openai_server, request):
    openai_server.stream_pause_s = 0.1
    openai_server.set_reply(REPLY)
    sizes: list[int] = []
    page = context.new_page()
    page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]))
    page.goto(server.url + "/")
    page.locator("#key-dialog").wait_for(state="visible")
    page.fill("#key-input", API_KEY)
    page.keyboard.press("Enter")
    page.locator("#collections li").first.wait_for()
    page.wait_for_load_state("networkidle")
    loaded = sum(sizes)
    # Page clock (ms since navigation start): when the question is sent and its first token shows.
    page.evaluate("""() => {
        window.firstToken = null;
        new MutationObserver(() => {
            const a = document.querySelector('#thread .answer');
            if (a && a.textContent && window.firstToken === null) window.firstToken = performance.now();
        }).observe(document.getElementById('thread'), {subtree: true, childList: true, characterData: true});
        document.getElementById('ask-form').addEventListener('submit', () => { window.sentAt = performance.now(); });
    }""")
    page.fill("#question", QUESTION)
    page.keyboard.press("Enter")
    page.locator("#thread .answer[data-done]").wait_for()
    first_token_ms, sent_ms = page.evaluate("[window.firstToken, window.sentAt]")
    say(request, f"page bytes before any document text: {loaded}; first answer token "
                         f"{first_token_ms:.0f} ms after navigation start, {first_token_ms - sent_ms:.0f} ms after "
                         "the question was sent (the key prompt typed in between)")
    assert loaded < 200_000
    assert first_token_ms > sent_ms


def test_offline_answers_show_their_usage_and_a_repeat_is_replayed_from_the_cache(browser, offline_server, screens):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    foreign = watch_foreign_requests(context, offline_server.url)
    page = context.new_page()
    page.goto(offline_server.url + "/")
    page.locator("#collections li", has_text="wren").wait_for()  # no key asked for: none is set
    lines = []
    for turn in range(2):
        page.click("#new-thread")  # the same question again, not a follow-up: the same cache key
        page.fill("#question", QUESTION)
        with page.expect_response(lambda r: r.url.endswith("/ask")) as asked:
            page.keyboard.press("Enter")
        page.locator("#thread .answer[data-done]").wait_for()
        done = next(data for name, data in ask_events(asked.value.text()) if name == "done")
        assert done["model"] == "extractive" and done["usage"]["cached"] is (turn == 1)
        lines.append(page.locator("#thread .usage").inner_text())
    assert "25 members" in page.locator("#thread .answer").inner_text()
    assert lines[0].startswith("model extractive · ") and lines[0].endswith(" · cost $0") and "cached" not in lines[0]
    assert lines[1].endswith(" · cached answer") and lines[1].removesuffix(" · cached answer") == lines[0]
    shot(page, screens, "12-cached")
    context.close()
    assert not foreign
