// What the pages share: the API key (typed by the person, kept in this browser's localStorage,
// sent as the Authorization header), calls to the API, Server-Sent Events read over fetch
// (EventSource cannot send a header), and building DOM from text. Nothing a program printed or
// the API returned is ever given to the page as markup: text goes in with textContent only.

const KEY_STORE = "cellblock.apiKey";

export const apiKey = {
  get: () => localStorage.getItem(KEY_STORE) || "",
  set: (token) => (token ? localStorage.setItem(KEY_STORE, token) : localStorage.removeItem(KEY_STORE)),
};

/** A refusal from the API: its status, its error object ({code, field, reason}) and Retry-After. */
export class ApiError extends Error {
  constructor(status, error, retryAfter) {
    const where = error && error.field ? ` (${error.field})` : "";
    super(error && error.reason ? `${error.reason}${where}` : `the API answered ${status}`);
    this.status = status;
    this.error = error || {};
    this.retryAfter = retryAfter;
  }
}

function headers(extra = {}) {
  const out = { ...extra };
  const token = apiKey.get();
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

/** Call the API: JSON in and out; a non-2xx answer throws ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, cache: "no-store", headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const data = await jsonOf(resp);
  if (!resp.ok) throw refusal(resp, data);
  return data;
}

/** A response's JSON body; null when it has none (or it is not JSON). */
async function jsonOf(resp) {
  const text = await resp.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function refusal(resp, data) {
  return new ApiError(resp.status, data && data.error, resp.headers.get("Retry-After"));
}

/** Open a submission's Server-Sent Events (after `lastEventId`, when resuming): ApiError when
 * refused, else an async iterator of the events, {event, id, data}, until the stream ends. */
export async function openEvents(path, { signal, lastEventId = null } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const resp = await fetch(path, { signal, cache: "no-store", headers: headers(extra) });
  if (!resp.ok) throw refusal(resp, await jsonOf(resp));
  return readEvents(resp);
}

async function* readEvents(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { event: "message", id: null, data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const field = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") event.event = field;
        else if (name === "id") event.id = field;
        else if (name === "data") event.data += (event.data ? "\n" : "") + field;
      }
      if (event.data) yield { ...event, data: JSON.parse(event.data) };
    }
  }
}

/** An element with attributes and children (strings become text nodes, never markup). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Bytes as a person reads them: 1536 -> "1.5 MiB" style, binary units. */
export function formatBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** Seconds as a person reads them: 0.0123 -> "12 ms", 2.5 -> "2.50 s". */
export function formatSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms`;
  return `${s.toFixed(2)} s`;
}

/** Wire the header's "API key" button and dialog (ids key-button, key-dialog, key-form,
 * key-input, key-why, key-forget); returns ask(reason) that opens it and resolves once closed
 * (true when a key was saved). */
export function keyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const why = document.getElementById("key-why");
  const button = document.getElementById("key-button");
  const usual = why.textContent;
  let settle = null;
  const show = () => (button.textContent = apiKey.get() ? "API key ✓" : "API key");
  dialog.addEventListener("close", () => {
    const choice = dialog.returnValue;
    if (choice === "save") apiKey.set(input.value.trim());
    if (choice === "forget") apiKey.set("");
    input.value = "";
    show();
    if (settle) settle(choice === "save");
    settle = null;
  });
  const ask = (reason) =>
    new Promise((resolve) => {
      why.textContent = reason || usual;
      settle = resolve;
      dialog.returnValue = ""; // Escape closes with the last value otherwise
      dialog.showModal();
      input.focus();
    });
  button.addEventListener("click", () => ask());
  show();
  return ask;
}
