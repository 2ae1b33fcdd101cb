// Documents: upload (drag-and-drop or picker) with each file's status polled until ready or failed;
// list, filter by source, delete.

import { ApiError, enc, json, request } from "./api.js";
import { current } from "./collections.js";
import { el, notify } from "./dom.js";
import { openDocument } from "./viewer.js";

const POLL_MS = 500;

async function upload(files) {
  const name = current();
  if (!name || !files.length) return;
  const form = new FormData();
  for (const file of files) {
    form.append("files", file, file.name);
    // A file from a dropped or picked folder keeps its path, so notes/a.txt and other/a.txt
    // stay two documents (one source per file, in order).
    form.append("source", file.webkitRelativePath || file.name);
  }
  const ul = document.getElementById("uploads");
  let accepted;
  try {
    const response = await request(`/collections/${enc(name)}/documents`, { method: "POST", body: form });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    accepted = body.data;
  } catch (error) {
    ul.prepend(el("li", { class: "failed" }, `Upload failed: ${error.message}`));
    return;
  }
  for (const doc of accepted) {
    const status = el("span", { class: `status ${doc.status}` }, doc.status);
    const detail = el("span", { class: "muted" });
    ul.prepend(el("li", { "data-id": doc.id }, el("span", {}, doc.source), " ", status, " ",
      el("span", { class: "muted" }, doc.change), " ", detail));
    track(name, doc, status, detail);
  }
}

async function track(name, doc, status, detail) {
  let state = doc;
  while (state.status === "queued" || state.status === "processing") {
    await new Promise((r) => setTimeout(r, POLL_MS));
    try {
      state = await json(`/collections/${enc(name)}/documents/${enc(doc.id)}`);
    } catch (error) {
      state = { status: "failed", error: error.message };
    }
    status.textContent = state.status;
    status.className = `status ${state.status}`;
  }
  if (state.error) detail.textContent = state.error;
  loadDocuments();
}

let listings = 0;

export async function loadDocuments() {
  const name = current();
  const ul = document.getElementById("documents");
  if (!name) return ul.replaceChildren();
  // The server filters (source_prefix), so a large collection is not fetched whole; only the
  // answer to the latest keystroke is shown.
  const filter = document.getElementById("doc-filter").value.trim();
  const query = new URLSearchParams({ limit: "100" });
  if (filter) query.set("source_prefix", filter);
  const seq = ++listings;
  let list;
  try {
    list = await json(`/collections/${enc(name)}/documents?${query}`);
  } catch (error) {
    notify(`Could not list documents: ${error.message}`, "error");
    return;
  }
  if (seq !== listings) return;
  const docs = list.data;
  ul.replaceChildren(...docs.map((d) => el("li", {},
    el("button", { type: "button", class: "link", "aria-label": `Open ${d.source}`, onclick: () => openDocument(name, d.id) },
      d.title || d.source),
    el("span", { class: "muted" }, ` ${d.source} · ${d.chunks} chunks `),
    el("span", { class: `status ${d.status}` }, d.status),
    d.error ? el("span", { class: "muted" }, ` ${d.error}`) : null,
    el("button", { type: "button", class: "danger", "aria-label": `Delete ${d.source}`, onclick: () => remove(name, d) }, "Delete"))));
}

async function remove(name, doc) {
  try {
    await json(`/collections/${enc(name)}/documents/${enc(doc.id)}`, { method: "DELETE" });
  } catch (error) {
    notify(`Could not delete ${doc.source}: ${error.message}`, "error");
  }
  loadDocuments();
}

export function setUpDocuments() {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    upload([...e.dataTransfer.files]);
  });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  document.getElementById("doc-filter").addEventListener("input", loadDocuments);
  document.getElementById("refresh-docs").addEventListener("click", loadDocuments);
}
