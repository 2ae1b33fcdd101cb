// Ask: a chat thread. The answer streams in (SSE read from fetch), each [n] links to the cited
// span, usage shows under the answer; follow-ups send the conversation as `messages`.

import { ApiError, enc, errorOf, request } from "./api.js";
import { current } from "./collections.js";
import { el } from "./dom.js";
import { readEvents } from "./sse.js";
import { openDocument } from "./viewer.js";

let history = [];
// Set false once the service refuses `messages` (a version without conversations): then each
// follow-up is sent as a lone question.
let acceptsMessages = true;

function bodyFor(question) {
  if (history.length && acceptsMessages) {
    return { messages: [...history, { role: "user", content: question }], stream: true };
  }
  return { question, stream: true };
}

async function post(name, question) {
  for (;;) {
    const body = bodyFor(question);
    const response = await request(`/collections/${enc(name)}/ask`, {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    if (response.ok) return response;
    const error = await response.json().catch(() => null);
    if (response.status === 400 && body.messages && /unknown field `messages`/.test(errorOf(error).message || "")) {
      acceptsMessages = false;
      continue;
    }
    throw new ApiError(response.status, error);
  }
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

function usageLine(model, usage, cost) {
  const bits = [`model ${model}`];
  if (usage) {
    bits.push(`${usage.prompt_tokens} prompt tokens`);
    if (usage.completion_tokens !== undefined) bits.push(`${usage.completion_tokens} completion tokens`);
  }
  if (cost !== undefined && cost !== null) bits.push(`cost $${Number(cost.total ?? cost).toFixed(6)}`);
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
        usage.textContent = usageLine(payload.model, payload.usage, payload.cost);
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
    history.push({ role: "user", content: question }, { role: "assistant", content: text });
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
