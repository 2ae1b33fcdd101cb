// Search: query, mode, k and a metadata filter; each hit's source, title, page, score and parts.

import { enc, json } from "./api.js";
import { current } from "./collections.js";
import { el } from "./dom.js";
import { openDocument } from "./viewer.js";

const fixed = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));

async function search(event) {
  event.preventDefault();
  const name = current();
  const ol = document.getElementById("hits");
  const body = {
    query: document.getElementById("query").value,
    mode: document.getElementById("mode").value,
    k: Number(document.getElementById("k").value) || 5,
  };
  const filter = document.getElementById("filter").value.trim();
  if (filter) {
    try {
      body.filter = JSON.parse(filter);
    } catch {
      ol.replaceChildren(el("li", { class: "failed" }, "The filter is not valid JSON, e.g. {\"source\": \"a.md\"}"));
      return;
    }
  }
  ol.setAttribute("aria-busy", "true");
  try {
    const { hits } = await json(`/collections/${enc(name)}/search`, { method: "POST", body });
    ol.replaceChildren(...hits.map((h) => el("li", { class: "hit" },
      el("div", { class: "hit-head" },
        el("button", { type: "button", class: "link", "aria-label": `Open ${h.source} at this passage`,
          onclick: () => openDocument(name, h.document_id, h) }, h.title || h.source),
        el("span", { class: "muted" }, ` ${h.source}${h.page != null ? ` · page ${h.page}` : ""}`)),
      el("div", { class: "scores" }, `score ${fixed(h.score)} · dense ${fixed(h.dense_score)} · lexical ${fixed(h.lexical_score)}`),
      el("p", { class: "snippet" }, h.text))));
    if (!hits.length) ol.replaceChildren(el("li", { class: "muted" }, "No hits."));
  } catch (error) {
    ol.replaceChildren(el("li", { class: "failed" }, `Search failed: ${error.message}`));
  } finally {
    ol.removeAttribute("aria-busy");
  }
}

export function setUpSearch() {
  document.getElementById("search-form").addEventListener("submit", search);
}
