// Collections: list with sizes, create, pick. The choice survives a reload (localStorage).

import { json } from "./api.js";
import { el, notify } from "./dom.js";

const CHOICE = "rag.collection";
const listeners = [];

export function current() {
  return localStorage.getItem(CHOICE) || "";
}

/** Calls `fn(name)` whenever another collection is picked. */
export function onPick(fn) {
  listeners.push(fn);
}

function pick(name) {
  localStorage.setItem(CHOICE, name);
  document.getElementById("collection").value = name;
  for (const fn of listeners) fn(name);
}

export async function loadCollections() {
  let list;
  try {
    list = await json("/collections?limit=100");
  } catch (error) {
    notify(`Could not list collections: ${error.message}`, "error");
    return;
  }
  const select = document.getElementById("collection");
  const ul = document.getElementById("collections");
  select.replaceChildren(...list.data.map((c) => el("option", { value: c.name }, c.name)));
  ul.replaceChildren(...list.data.map((c) => el("li", {},
    el("button", { type: "button", class: "link", "aria-label": `Pick collection ${c.name}`, onclick: () => pick(c.name) },
      c.name),
    el("span", { class: "muted" }, ` ${c.documents} documents · ${c.chunks} chunks · ${c.embedder.kind}`))));
  const names = list.data.map((c) => c.name);
  const chosen = names.includes(current()) ? current() : names[0] || "";
  if (chosen) pick(chosen);
}

export function setUpCollections() {
  document.getElementById("collection").addEventListener("change", (e) => pick(e.target.value));
  document.getElementById("create-collection").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("new-collection");
    try {
      await json("/collections", { method: "POST", body: { name: input.value.trim() } });
      localStorage.setItem(CHOICE, input.value.trim());
      input.value = "";
      await loadCollections();
    } catch (error) {
      notify(`Could not create the collection: ${error.message}`, "error");
    }
  });
}
