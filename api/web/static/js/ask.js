// Ask: a chat thread. The answer streams in (SSE read from fetch), each [n] links to the cited
// span, usage shows under the answer; follow-ups send the conversation as `messages`.

import { ApiError, enc, request } from "./api.js";
import { current } from "./collections.js";
import { el } from "./dom.js";
import { readEvents } from "./sse.js";
import { openDocument } from "./viewer.js";

let history = [];

/** The body of /ask: a follow-up sends the conversation so far as `messages`. */
function bodyFor(question) {
  const asked = { role: "user", content: question };
  return history.length ? { messages: [...history, asked], stream: true } : { question, stream: true };
}

async function post(name, question) {
  const response = await request(`/collections/${enc(name)}/ask`, {
    method: "POST", body: JSON.stringify(bodyFor(question)), headers: { "Content-Type": "application/json" },
  });
  if (response.ok) return response;
  throw new ApiError(response.status, await response.json().catch(() => null));
}

/** The answer's text with each [n] a link to citation n. */
function linked(text, citations, name) {
  const byIndex = new Map(citations.map((c) => [c.index, c]));
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const citation = byIndex.get(Number(match[1]));
    if (!citation) continue;
    parts.push(text.slice(last, match.index));
    parts.push(el("a", { href: `#cite-${citation.index}`, class: "cite",
      "aria-label": `Citation ${citation.index}: ${citation.title || citation.source}`,
      onclick: (e) => { e.preventDefault(); openDocument(name, citation.document_id, citation); } }, match[0]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

/** What an answer cost, from its `usage` (rag/answer/usage.py): tokens of the answer and of the
 * rewrite that made a follow-up stand alone, what did not fit the model's window, the estimated
 * cost when the model has a cited price, and whether the answer was replayed from the cache. */
export function usageLine(model, usage) {
  const bits = [`model ${model}`];
  if (usage) {
    bits.push(`${usage.prompt_tokens} prompt tokens`);
    if (usage.completion_tokens !== undefined) bits.push(`${usage.completion_tokens} completion tokens`);
    if (usage.rewrite && usage.rewrite.total_tokens) bits.push(`${usage.rewrite.total_tokens} rewrite tokens`);
    const context = usage.context || {};
    if (context.passages_dropped) bits.push(`${context.passages_dropped} passages left out (model window)`);
    if (context.turns_dropped) bits.push(`${context.turns_dropped} earlier turns left out`);
    // Nothing spent (offline, or replayed from the cache) reads as $0, not as $0.000000.
    if (typeof usage.cost_usd === "number") bits.push(`cost $${usage.cost_usd ? usage.cost_usd.toFixed(6) : "0"}`);
    else if (usage.cost_usd === null) bits.push("cost unknown (no cited price)");
    if (usage.cached) bits.push("cached answer");
  }
  return bits.join(" · ");
}

async function ask(event) {
  event.preventDefault();
  const input = document.getElementById("question");
  const question = input.value.trim();
  const name = current();
  if (!question || !name) return;
  input.value = "";
  const thread = document.getElementById("thread");
  const answer = el("div", { class: "answer", "aria-busy": "true" });
  const sources = el("ol", { class: "sources" });
  const usage = el("p", { class: "usage muted" });
  thread.append(el("div", { class: "turn user" }, question), el("div", { class: "turn bot" }, answer, sources, usage));
  let text = "";
  let citations = [];
  let finished = false;
  try {
    const response = await post(name, question);
    for await (const { event: kind, data } of readEvents(response)) {
      const payload = JSON.parse(data);
      if (kind === "delta") {
        text += payload.text;
        answer.textContent = text;
      } else if (kind === "citations") {
        citations = payload;
      } else if (kind === "done") {
        finished = true;
        usage.textContent = usageLine(payload.model, payload.usage);
        if (payload.usage && payload.usage.cached) usage.classList.add("cached");
      } else if (kind === "error") {
        usage.textContent = `Error: ${payload.message}`;
        usage.className = "usage failed";
      }
    }
    answer.replaceChildren(...linked(text, citations, name));
    sources.replaceChildren(...citations.map((c) => el("li", { value: c.index },
      el("a", { href: `#cite-${c.index}`, class: "cite", "aria-label": `Open citation ${c.index}`,
        onclick: (e) => { e.preventDefault(); openDocument(name, c.document_id, c); } }, c.title || c.source),
      el("span", { class: "muted" }, ` ${c.source}${c.page != null ? ` · page ${c.page}` : ""}`))));
    // Only a whole answer joins the conversation the next question is read with.
    if (finished) history.push({ role: "user", content: question }, { role: "assistant", content: text });
  } catch (error) {
    answer.textContent = `Could not answer: ${error.message}`;
    answer.className = "answer failed";
  } finally {
    answer.removeAttribute("aria-busy");
    answer.dataset.done = "true";
  }
}

export function resetThread() {
  history = [];
  document.getElementById("thread").replaceChildren();
}

export function setUpAsk() {
  document.getElementById("ask-form").addEventListener("submit", ask);
  document.getElementById("new-thread").addEventListener("click", resetThread);
}
