// Same-origin calls to the service. With RAG_API_KEYS set, a 401 asks for a key once; the key is
// kept in sessionStorage and sent only in the Authorization header.

const KEY = "rag.apiKey";

/** The `error` object of the service's error body ({error: {message, type, param, code}}). */
export function errorOf(body) {
  return (body && (body.error || body)) || {};
}

export class ApiError extends Error {
  constructor(status, body) {
    super(errorOf(body).message || `HTTP ${status}`);
    this.status = status;
    this.error = errorOf(body);
  }
}

let pendingKey = null;

/** Asks for a key in the key dialog; resolves once one is given. */
function askForKey(message) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-message").textContent = message;
  pendingKey = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      pendingKey = null;
      sessionStorage.setItem(KEY, input.value.trim());
      input.value = "";
      resolve();
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return pendingKey;
}

/** fetch() against this service, answering 401 by asking for a key and trying again. */
export async function request(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
    if (response.status !== 401 || attempt > 3) return response;
    const body = await response.json().catch(() => ({}));
    await askForKey(key ? `That key was refused (${errorOf(body).message || "401"}). Enter another key.`
                        : "This service needs an API key. Enter it to continue.");
  }
}

/** A JSON call: the parsed body, or an ApiError with the service's error body. */
export async function json(path, { method = "GET", body } = {}) {
  const options = { method };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers = { "Content-Type": "application/json" };
  }
  const response = await request(path, options);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const enc = encodeURIComponent;
