// The document viewer: a document's text with a cited span highlighted and scrolled into view.

import { enc, json } from "./api.js";
import { el, notify } from "./dom.js";
import { utf16Index } from "./offsets.js";

const dialog = () => document.getElementById("viewer");

/** Opens document `id` of `collection`; with a citation, highlights its span (code points
 * [start_char, end_char)) and says its page. */
export async function openDocument(collection, id, citation = null) {
  const start = citation ? citation.start_char : null;
  const end = citation ? citation.end_char : null;
  let doc;
  try {
    doc = await json(`/collections/${enc(collection)}/documents/${enc(id)}`);
  } catch (error) {
    notify(`Could not open document ${id}: ${error.message}`, "error");
    return;
  }
  document.getElementById("viewer-title").textContent = doc.title || doc.source;
  const page = citation && citation.page != null ? ` · page ${citation.page}` : "";
  const span = start === null ? "" : `${page} · characters ${start}–${end}`;
  document.getElementById("viewer-meta").textContent =
    `${doc.source} · document ${doc.id} · ${doc.status}${span}`;
  const pre = document.getElementById("viewer-text");
  pre.replaceChildren();
  if (start === null) {
    pre.textContent = doc.text;
  } else {
    const a = utf16Index(doc.text, start);
    const b = utf16Index(doc.text, end);
    pre.append(doc.text.slice(0, a), el("mark", { id: "cited" }, doc.text.slice(a, b)), doc.text.slice(b));
  }
  if (!dialog().open) dialog().showModal();
  document.getElementById("cited")?.scrollIntoView({ block: "center" });
}

export function setUpViewer() {
  document.getElementById("viewer-close").addEventListener("click", () => dialog().close());
}
