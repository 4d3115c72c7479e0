// The playground: pick a language, write a program, run it on an input or judge it on tests,
// and watch it go (queued -> compiling -> running test k of n -> the verdict) over the
// submission's event stream — or, ticked Interactive, run it as a session over a WebSocket,
// its input typed while it runs. /s/{id} opens a submission (its code and its result).
// Texts travel as base64 both ways, so a program's output is shown byte for byte: as UTF-8
// text when it is that, else with the bad bytes marked and a hex view. Nothing a program
// printed is ever parsed as markup (common.js: el()).

import { ApiError, api, apiKey, el, formatBytes, formatSeconds, keyDialog, openEvents } from "/static/common.js";

const $ = (id) => document.getElementById(id);
const LAST_LANGUAGE = "cellblock.language";
// A first program per language, so Run does something at once.
const HELLO = {
  bash: 'echo "Hello, world!"\n',
  c: '#include <stdio.h>\n\nint main(void) {\n    printf("Hello, world!\\n");\n    return 0;\n}\n',
  cpp: '#include <iostream>\n\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("Hello, world!")\n}\n',
  java: 'public class Main {\n    public static void main(String[] args) {\n        System.out.println("Hello, world!");\n    }\n}\n',
  javascript: 'console.log("Hello, world!");\n',
  kotlin: 'fun main() {\n    println("Hello, world!")\n}\n',
  lua: 'print("Hello, world!")\n',
  php: '<?php\necho "Hello, world!\\n";\n',
  python3: 'print("Hello, world!")\n',
  ruby: 'puts "Hello, world!"\n',
  rust: 'fn main() {\n    println!("Hello, world!");\n}\n',
  typescript: 'const greeting: string = "Hello, world!";\nconsole.log(greeting);\n',
};
// How a limit is typed, by what it counts (/v1/languages: limit_units): its label, and what one
// typed unit is in the API's number.
const LIMIT_UNITS = { seconds: ["s", 1], bytes: ["MiB", 1024 * 1024], items: ["", 1] };

const state = {
  languages: new Map(), // id -> the language as /v1/languages describes it
  units: {}, // limit -> seconds | bytes | items
  editor: null, // {getValue, setValue, setLanguage, focus}
  running: null, // the AbortController of the run being watched
};
let askKey = () => Promise.resolve(false);
let shownPath = location.pathname; // what the page shows: a popstate elsewhere reloads it

function showPath(path) {
  history.pushState({}, "", path);
  shownPath = path;
}

// ------------------------------------------------------------------ bytes and base64

const utf8 = new TextEncoder();

function toBase64(text) {
  const bytes = utf8.encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function fromBase64(b64) {
  const binary = atob(b64 || "");
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Bytes as the page shows them: {text, exact} (exact: they were valid UTF-8). */
function decode(bytes) {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes), exact: true };
  } catch {
    return { text: new TextDecoder("utf-8").decode(bytes), exact: false };
  }
}

/** A text of the API's answer, in the submission's `encoding`, as bytes. */
function bytesOf(value, encoding) {
  return encoding === "base64" ? fromBase64(value) : utf8.encode(value || "");
}

function hexDump(bytes, most = 4096) {
  const lines = [];
  for (let i = 0; i < Math.min(bytes.length, most); i += 16) {
    const row = Array.from(bytes.subarray(i, Math.min(i + 16, bytes.length)), (b) => b.toString(16).padStart(2, "0"));
    lines.push(`${i.toString(16).padStart(6, "0")}  ${row.join(" ")}`);
  }
  if (bytes.length > most) lines.push(`… ${bytes.length - most} more bytes`);
  return lines.join("\n");
}

/** Put an output into its <pre> (as text), with a note when it is not UTF-8 or was cut. */
function showOutput(pre, value, encoding, truncated) {
  const bytes = bytesOf(value, encoding);
  const { text, exact } = decode(bytes);
  pre.textContent = text;
  const notes = [];
  if (!exact) notes.push(el("span", {}, "Not valid UTF-8: bad bytes are shown as �. "), hexDetails(bytes));
  if (truncated) notes.push(el("span", {}, "Cut at the output limit."));
  pre.nextElementSibling?.classList.contains("note") && pre.nextElementSibling.remove();
  if (notes.length) pre.after(el("p", { class: "note" }, notes));
}

function hexDetails(bytes) {
  return el("details", {}, el("summary", {}, "Show the bytes"), el("pre", { class: "out mono" }, hexDump(bytes)));
}

// ------------------------------------------------------------------ languages, editor, form

async function loadLanguages() {
  const body = await api("/v1/languages");
  state.units = body.limit_units || {};
  const select = $("language");
  const checkerSelect = $("checker-language");
  select.replaceChildren();
  checkerSelect.replaceChildren();
  for (const lang of body.languages) {
    state.languages.set(lang.id, lang);
    const label = `${lang.name} (${lang.version})`;
    select.append(el("option", { value: lang.id }, label));
    checkerSelect.append(el("option", { value: lang.id }, label));
  }
  const wanted = localStorage.getItem(LAST_LANGUAGE);
  const first = [wanted, "python3", body.languages[0]?.id].find((id) => id && state.languages.has(id));
  if (first) select.value = first;
  if (state.languages.has("python3")) checkerSelect.value = "python3";
}

async function setUpEditor() {
  const holder = $("editor");
  const textarea = $("source");
  try {
    const { createEditor } = await import("/static/vendor/editor.js");
    const doc = textarea.value;
    textarea.remove();
    // CodeMirror writes its stylesheet into a <style> element: the page's policy allows it by
    // the nonce the server put on this page's script tag (api/pages.py).
    const nonce = document.querySelector("script[nonce]")?.nonce || "";
    state.editor = createEditor(holder, { doc, label: "Source code", onRun: run, nonce });
  } catch {
    // No bundle (not built): the plain text box (the page's own shortcut runs from it too).
    state.editor = {
      getValue: () => textarea.value,
      setValue: (text) => (textarea.value = text),
      setLanguage: async () => {},
      focus: () => textarea.focus(),
    };
  }
}

/** The language picked: its syntax (the promise of it), its limits, and its hello world if the
 * editor holds none of ours. */
function languageChanged({ keepSource = false } = {}) {
  const id = $("language").value;
  const lang = state.languages.get(id);
  if (!lang) return Promise.resolve();
  localStorage.setItem(LAST_LANGUAGE, id);
  const syntax = state.editor.setLanguage(id);
  const current = state.editor.getValue();
  if (!keepSource && (current.trim() === "" || Object.values(HELLO).includes(current))) {
    state.editor.setValue(HELLO[id] || "");
  }
  const kind = lang.compiled ? "compiled" : "interpreted";
  const lim = lang.limits.default;
  $("language-info").textContent =
    `${lang.name} ${lang.version}, ${kind}; main file ${lang.source_name}; ` +
    `by default ${lim.cpu_time} s of CPU, ${formatBytes(lim.memory)} of memory.`;
  renderLimits(lang);
  return syntax;
}

function renderLimits(lang) {
  const box = $("limits");
  const kept = new Map([...box.querySelectorAll("input")].map((i) => [i.name, i.value]));
  box.replaceChildren();
  for (const [name, dflt] of Object.entries(lang.limits.default)) {
    const [unit, scale] = LIMIT_UNITS[state.units[name]] || ["", 1];
    const max = lang.limits.max[name] / scale;
    const id = `limit-${name}`;
    const words = name.replace("_", " ");
    const input = el("input", {
      id,
      name,
      type: "number",
      min: "0",
      step: "any",
      max: String(max),
      placeholder: String(+(dflt / scale).toFixed(3)),
      inputmode: "decimal",
      "aria-describedby": `${id}-max`,
    });
    input.value = kept.get(name) || "";
    box.append(
      el("div", {},
        el("label", { for: id }, `${words[0].toUpperCase()}${words.slice(1)}${unit ? ` (${unit})` : ""}`),
        input,
        el("span", { id: `${id}-max`, class: "hint" }, `max ${+max.toFixed(3)}`)),
    );
  }
}

function addTest(input = "", expected = "") {
  const list = $("tests");
  const n = list.children.length + 1;
  const inId = `test-${n}-input`;
  const outId = `test-${n}-expected`;
  const item = el("li", {},
    el("div", { class: "pair" },
      el("div", {}, el("label", { for: inId }, `Input ${n}`), el("textarea", { id: inId, rows: "3", spellcheck: "false", class: "test-input" })),
      el("div", {}, el("label", { for: outId }, `Expected output ${n}`), el("textarea", { id: outId, rows: "3", spellcheck: "false", class: "test-expected" }))),
    el("button", { type: "button", class: "link", onclick: () => removeTest(item) }, `Remove test ${n}`));
  item.querySelector(".test-input").value = input;
  item.querySelector(".test-expected").value = expected;
  list.append(item);
  return item;
}

/** Every test row as typed, empty ones too. */
function testRows() {
  return [...$("tests").children].map((li) => ({
    input: li.querySelector(".test-input").value,
    expected_output: li.querySelector(".test-expected").value,
  }));
}

function removeTest(item) {
  const tests = testRows();
  tests.splice([...$("tests").children].indexOf(item), 1);
  $("tests").replaceChildren();
  tests.forEach((t) => addTest(t.input, t.expected_output));
  $("add-test").focus();
}

/** The tests as typed (a row left empty is no test: it would turn a run into a judging). */
function readTests() {
  return testRows().filter((t) => t.input !== "" || t.expected_output !== "");
}

function interactiveChanged() {
  $("stdin-field").hidden = $("interactive").checked; // typed while it runs instead
}

function checkerChanged() {
  const kind = $("checker").value;
  $("float-options").hidden = kind !== "float";
  $("custom-options").hidden = kind !== "custom";
}

/** The tabs, as the ARIA tabs pattern has them: arrows move between them. */
function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });
  return select;
}

// ------------------------------------------------------------------ the submission

/** The form as a submission (POST /v1/submissions), every text in base64. */
function submission() {
  const lang = state.languages.get($("language").value);
  const body = { language: lang.id, encoding: "base64", files: { [lang.source_name]: toBase64(state.editor.getValue()) } };
  const args = $("args").value.split("\n").filter((a) => a !== "");
  if (args.length) body.args = args;
  const tests = readTests();
  if (tests.length) {
    body.tests = tests.map((t) => ({ input: toBase64(t.input), expected_output: toBase64(t.expected_output) }));
    const kind = $("checker").value;
    if (kind === "float") body.checker = { type: "float", tolerance: Number($("tolerance").value) };
    else if (kind === "custom") {
      body.checker = { type: "custom", language: $("checker-language").value, source: toBase64($("checker-source").value) };
    } else body.checker = kind;
    if ($("stop-on-failure").checked) body.stop_on_first_failure = true;
  } else {
    body.stdin = toBase64($("stdin").value);
  }
  const limits = {};
  for (const input of $("limits").querySelectorAll("input")) {
    if (input.value === "") continue;
    const [, scale] = LIMIT_UNITS[state.units[input.name]] || ["", 1];
    const value = Number(input.value) * scale;
    // MiB typed become whole bytes; anything else goes as typed (the API says if it must be whole).
    limits[input.name] = state.units[input.name] === "bytes" ? Math.round(value) : value;
  }
  if (Object.keys(limits).length) body.limits = limits;
  return body;
}

/** Fill the form from what a submission asked (GET ...?include=request). */
function fillForm(request) {
  const enc = request.encoding;
  const text = (value) => decode(bytesOf(value, enc)).text;
  if (state.languages.has(request.language)) $("language").value = request.language;
  const lang = state.languages.get(request.language);
  const files = request.files || {};
  const main = lang && lang.source_name in files ? lang.source_name : Object.keys(files)[0];
  state.editor.setValue(main ? text(files[main]) : "");
  languageChanged({ keepSource: true }).catch(() => {});
  const unseen = [
    Object.keys(files).length > 1 ? `${Object.keys(files).length - 1} more file(s)` : null,
    (request.compile_options || []).length ? "compiler options" : null,
    request.collect ? "files to collect" : null,
    request.interactor ? "an interactor" : null,
  ].filter(Boolean);
  $("shared-note").textContent = unseen.length
    ? `This submission also had ${unseen.join(", ")}, which the playground does not show: Run sends only what is shown.`
    : "";
  $("shared-note").hidden = !unseen.length;
  $("args").value = (request.args || []).join("\n");
  $("stdin").value = request.stdin === undefined ? "" : text(request.stdin);
  $("tests").replaceChildren();
  for (const t of request.tests || []) addTest(text(t.input), t.expected_output === null ? "" : text(t.expected_output));
  const checker = request.checker || { type: "exact" };
  $("checker").value = checker.type;
  if (checker.type === "float") $("tolerance").value = String(checker.tolerance);
  if (checker.type === "custom") {
    $("checker-language").value = checker.language;
    $("checker-source").value = text(checker.source);
  }
  checkerChanged();
  $("stop-on-failure").checked = Boolean(request.stop_on_first_failure);
  $("interactive").checked = "idle_timeout" in request;
  interactiveChanged();
  for (const [name, value] of Object.entries(request.limits || {})) {
    const input = $(`limit-${name}`);
    const [, scale] = LIMIT_UNITS[state.units[name]] || ["", 1];
    if (input) input.value = String(+(value / scale).toFixed(6));
  }
}

// ------------------------------------------------------------------ running and results

function setStatus(text) {
  $("status").textContent = text;
}

function clearResult() {
  for (const id of ["verdict", "compile", "terminal", "run-output", "judge-output", "share"]) $(id).hidden = true;
  $("test-table").tBodies[0].replaceChildren();
  document.querySelectorAll("#result .note").forEach((n) => n.remove());
}

const STATE_WORDS = { queued: "Queued…", compiling: "Compiling…" };

function progressText(data) {
  if (data.state === "running") return data.of > 1 ? `Running test ${data.test} of ${data.of}…` : "Running…";
  return STATE_WORDS[data.state] || `${data.state}…`;
}

async function run() {
  if ($("run").disabled || !state.languages.size) return;
  if (state.running) state.running.abort();
  const controller = new AbortController();
  state.running = controller;
  clearResult();
  $("run").disabled = true;
  setStatus("Sending…");
  $("result").scrollIntoView({ block: "nearest" }); // on a phone it is below the form
  try {
    if ($("interactive").checked) {
      if (readTests().length) {
        setStatus("An interactive run takes no tests: remove them, or untick Interactive.");
        return;
      }
      await runSession(sessionOf(submission()), controller.signal);
      return;
    }
    const body = submission();
    const created = await withKey(() => api("/v1/submissions", { method: "POST", body }));
    showPath(`/s/${created.id}`);
    showShare(created.id);
    setStatus("Queued…");
    await watch(created.id, controller.signal);
  } catch (err) {
    if (err.name !== "AbortError") failed(err);
  } finally {
    if (state.running === controller) state.running = null;
    $("run").disabled = false;
    if (!document.activeElement || document.activeElement === document.body) $("run").focus(); // disabling dropped it
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), reject(new DOMException("aborted", "AbortError"))), { once: true });
  });

/** `call`, again after the answer's Retry-After while the API is busy (429, 503): the
 * submission is queued and will finish, whether or not this page may look at it this second. */
async function patiently(call, signal, tries = 6) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (err) {
      const busy = err instanceof ApiError && (err.status === 429 || err.status === 503);
      if (!busy || attempt >= tries) throw err;
      await sleep(1000 * Math.min(10, Number(err.retryAfter) || 1), signal);
    }
  }
}

/** Follow a submission's events until it finishes (resuming after the last one seen when the
 * stream breaks), then show its result. */
async function watch(id, signal) {
  let last = null;
  for (let resumed = 0; ; resumed += 1) {
    try {
      const stream = await patiently(() => openEvents(`/v1/submissions/${id}/events`, { signal, lastEventId: last }), signal);
      for await (const { event, id: eventId, data } of stream) {
        last = eventId || last;
        if (event === "state") setStatus(progressText(data));
        else if (event === "test") addTestRow(data);
        else if (event === "finished") {
          showResult(await patiently(() => api(`/v1/submissions/${id}`, { signal }), signal));
          return;
        }
      }
    } catch (err) {
      if (err.name === "AbortError" || err instanceof ApiError || resumed >= 5) throw err;
    }
    await sleep(1000, signal); // the stream broke off before `finished`: resume after `last`
  }
}

function failed(err) {
  if (err instanceof ApiError) {
    const retry = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
    setStatus(`Refused (${err.status}): ${err.message}.${retry}`);
  } else {
    setStatus(`Could not reach the API: ${err.message}`);
  }
}

/** Run `call`; on a 401 ask for a key once and try again. */
async function withKey(call) {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    const saved = await askKey(`${err.message}. Enter an API key to continue.`);
    if (!saved) throw err;
    return call();
  }
}

function showShare(id) {
  const link = $("share");
  link.href = `/s/${id}`;
  link.hidden = false;
}

const VERDICT_WORDS = {
  accepted: "Accepted",
  wrong_answer: "Wrong answer",
  time_limit_exceeded: "Time limit exceeded",
  memory_limit_exceeded: "Memory limit exceeded",
  output_limit_exceeded: "Output limit exceeded",
  runtime_error: "Runtime error",
  compilation_error: "Compilation error",
  security_violation: "Security violation",
  checker_error: "Checker error",
  internal_error: "Internal error (not your program's fault)",
};

function verdictBadge(verdict) {
  const cls = verdict === "accepted" ? "v-accepted" : verdict === "internal_error" ? "v-other" : "v-bad";
  return el("span", { class: `verdict-word ${cls}`, "data-verdict": verdict }, VERDICT_WORDS[verdict] || verdict);
}

function addTestRow(t, enc = null) {
  const body = $("test-table").tBodies[0];
  const index = t.index;
  let row = body.querySelector(`tr[data-index="${index}"]`);
  const details = [];
  if (enc !== null) {
    const out = el("pre", { class: "out" });
    const err = el("pre", { class: "out" });
    details.push(
      el("details", {},
        el("summary", {}, "Output"),
        t.message ? el("p", {}, t.message) : null,
        el("h3", {}, "Standard output"), out,
        el("h3", {}, "Standard error"), err,
        el("p", { class: "hint" }, exitText(t))),
    );
    showOutput(out, t.stdout, enc, t.stdout_truncated);
    showOutput(err, t.stderr, enc, t.stderr_truncated);
  }
  const cells = [
    el("th", { scope: "row" }, String(index)),
    el("td", {}, verdictBadge(t.verdict)),
    el("td", {}, formatSeconds(t.cpu_time)),
    el("td", {}, formatSeconds(t.wall_time)),
    el("td", {}, formatBytes(t.peak_memory)),
    el("td", {}, details),
  ];
  if (!row) {
    row = el("tr", { "data-index": index });
    body.append(row);
  }
  row.replaceChildren(...cells);
  $("judge-output").hidden = false;
}

function exitText(t) {
  if (t.signal) return `Killed by ${t.signal}.`;
  if (t.exit_code !== null && t.exit_code !== undefined) return `Exit code ${t.exit_code}.`;
  return "";
}

function showResult(view) {
  if (view.state !== "finished") {
    setStatus(progressText(view.progress ? { state: "running", ...view.progress } : view));
    return false;
  }
  const enc = view.encoding;
  const tests = view.tests || [];
  const passed = tests.filter((t) => t.verdict === "accepted").length;
  const runMode = "stdout" in view; // the view lifts a run's output to the top in run mode only
  showFinished(view, runMode ? exitText(tests[0] || {}) : `${passed} of ${tests.length} tests accepted.`);
  if (runMode) {
    const t = tests[0];
    showOutput($("stdout"), view.stdout, enc, t && t.stdout_truncated);
    showOutput($("stderr"), view.stderr, enc, t && t.stderr_truncated);
    $("run-facts").textContent = t ? `${exitText(t)} ${accounting(t)}` : "";
    $("run-output").hidden = false;
    $("judge-output").hidden = true; // the run's `test` event drew a row while it went
  } else {
    $("test-table").tBodies[0].replaceChildren();
    tests.forEach((t) => addTestRow(t, enc));
    $("judge-output").hidden = tests.length === 0;
  }
  return true;
}

/** What every finished submission shows: its verdict, a status line (`summary` of how it went,
 * unless it did not compile), the compiler's output if any, and its link. */
function showFinished(view, summary) {
  const verdict = $("verdict");
  verdict.replaceChildren(verdictBadge(view.verdict));
  verdict.hidden = false;
  const how = view.verdict === "compilation_error" ? "It did not compile." : summary;
  setStatus(`Finished: ${VERDICT_WORDS[view.verdict] || view.verdict}. ${how}${view.message ? ` ${view.message}` : ""}`);
  if (bytesOf(view.compile_output || "", view.encoding).length) {
    showOutput($("compile-output"), view.compile_output, view.encoding, false);
    $("compile").hidden = false;
  }
  showShare(view.id);
}

// ------------------------------------------------------------------ interactive sessions

const SESSION_FIELDS = ["language", "files", "args", "compile_options", "limits", "encoding"];
let session = null; // the open session's socket

/** A session's first message: the run-mode submission's fields that a session takes. */
function sessionOf(body) {
  return Object.fromEntries(Object.entries(body).filter(([name]) => SESSION_FIELDS.includes(name)));
}

/** A session's socket. A browser's WebSocket cannot send a header: the key, if any, is offered
 * as a subprotocol beside cellblock.v1, which is the one the server answers. */
function openSocket() {
  const key = apiKey.get();
  const protocols = ["cellblock.v1", ...(key ? [`cellblock.key.${key}`] : [])];
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return new WebSocket(`${scheme}://${location.host}/v1/sessions`, protocols);
}

function terminalWrite(text, cls = null) {
  if (!text) return;
  const out = $("terminal-output");
  out.append(cls ? el("span", { class: cls }, text) : document.createTextNode(text));
  out.scrollTop = out.scrollHeight;
}

function terminalOpen(open, { input = open } = {}) {
  for (const id of ["terminal-input", "terminal-send", "terminal-eof"]) $(id).disabled = !input;
  $("terminal-kill").disabled = !open;
}

function sessionSend(message) {
  if (session && session.readyState === WebSocket.OPEN) session.send(JSON.stringify(message));
}

function sendLine(event) {
  event.preventDefault();
  const input = $("terminal-input");
  if (input.disabled) return;
  const line = `${input.value}\n`;
  sessionSend({ type: "stdin", data: toBase64(line) });
  terminalWrite(line, "stdin"); // a terminal echoes what is typed
  input.value = "";
}

function sendEof() {
  sessionSend({ type: "eof" });
  terminalOpen(true, { input: false });
}

/** Run `body` as a session (/v1/sessions): its output into the terminal as it comes, the lines
 * typed below it to its stdin, then its result. Resolves when the socket is closed. */
function runSession(body, signal) {
  return new Promise((resolve) => {
    let ws;
    try {
      ws = openSocket();
    } catch (err) {
      setStatus(`Could not open a session: ${err.message}`);
      resolve();
      return;
    }
    session = ws;
    let opened = false;
    let ended = false;
    let refusal = null;
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    $("terminal-output").replaceChildren();
    $("terminal-facts").textContent = "";
    $("terminal").hidden = false;
    signal.addEventListener("abort", () => {
      sessionSend({ type: "kill" });
      ws.close();
    });
    ws.addEventListener("open", () => {
      opened = true;
      ws.send(JSON.stringify(body));
      setStatus("Queued…");
    });
    ws.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "session") {
        showPath(`/s/${m.id}`);
        showShare(m.id);
      } else if (m.type === "state") {
        const running = m.state === "running";
        setStatus(running ? "Running: type its input below." : progressText(m));
        if (running && $("terminal-input").disabled) {
          terminalOpen(true);
          $("terminal-input").focus();
        }
      } else if (m.type === "output") {
        const text = decoders[m.stream].decode(bytesOf(m.data, body.encoding), { stream: true });
        terminalWrite(text, m.stream === "stderr" ? "stderr" : null);
      } else if (m.type === "error") {
        refusal = m.error;
        setStatus(`Refused: ${new ApiError(m.error.status, m.error).message}.`);
      } else if (m.type === "result") {
        ended = true;
        for (const [stream, decoder] of Object.entries(decoders)) terminalWrite(decoder.decode(), stream === "stderr" ? "stderr" : null);
        showSessionResult(m.result);
      }
    });
    ws.addEventListener("close", async (e) => {
      if (session === ws) session = null;
      terminalOpen(false);
      if (!ended && !signal.aborted) {
        if (refusal) setStatus(`Refused (${e.code - 4000}): ${new ApiError(refusal.status, refusal).message}.`);
        else if (!opened) {
          // Refused before the upgrade: a browser is told nothing, so ask the API why (a key?).
          const retry = await whyNoSession();
          if (retry) {
            resolve(runSession(body, signal));
            return;
          }
        } else setStatus(`The session ended without a result (${e.code}${e.reason ? `: ${e.reason}` : ""}).`);
      }
      resolve();
    });
  });
}

/** Why a session could not open: a key missing or refused (then ask for one: true to retry),
 * else the API's limits on open sessions. */
async function whyNoSession() {
  try {
    await api(`/v1/submissions?ids=${"0".repeat(32)}`); // a key is checked here as for a session
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      return askKey(`${err.message}. Enter an API key to continue.`);
    }
    failed(err);
    return false;
  }
  setStatus("The API refused the session: too many sessions are open (for this key, or for the workers). Try again soon.");
  return false;
}

function showSessionResult(view) {
  const t = (view.tests || [])[0];
  showFinished(view, exitText(t || {}));
  $("terminal-facts").textContent = t ? accounting(t) : "";
  $("terminal").hidden = false;
}

function accounting(t) {
  return `CPU ${formatSeconds(t.cpu_time)}, wall ${formatSeconds(t.wall_time)}, memory ${formatBytes(t.peak_memory)}.`;
}

/** /s/{id}: the submission's code and result (or its progress, then its result). */
async function openShared(id) {
  setStatus("Loading the submission…");
  try {
    const view = await withKey(() => api(`/v1/submissions/${id}?include=request`));
    if (view.request) fillForm(view.request);
    if (view.request && view.request.tests) $("tab-judge").click();
    if (view.request && "idle_timeout" in view.request && view.state === "finished") {
      showSessionResult(view); // an interactive session: its output went to its client only
      $("terminal-output").replaceChildren(el("span", { class: "note" }, "An interactive session's output is not kept."));
      return;
    }
    if (!showResult(view)) {
      const controller = new AbortController();
      state.running = controller;
      try {
        await watch(id, controller.signal);
      } finally {
        if (state.running === controller) state.running = null;
      }
    }
  } catch (err) {
    if (err.name === "AbortError") return; // a new run took over
    if (err instanceof ApiError && err.status === 404) {
      setStatus("No such submission: it expired, or it belongs to another API key.");
    } else failed(err);
  }
}

// ------------------------------------------------------------------ start

async function start() {
  askKey = keyDialog();
  const selectTab = setUpTabs();
  $("add-test").addEventListener("click", () => {
    addTest().querySelector("textarea").focus();
  });
  $("checker").addEventListener("change", checkerChanged);
  $("interactive").addEventListener("change", interactiveChanged);
  $("terminal-form").addEventListener("submit", sendLine);
  $("terminal-input").addEventListener("keydown", (e) => {
    if (e.key === "d" && e.ctrlKey) {
      e.preventDefault();
      sendEof();
    }
  });
  $("terminal-eof").addEventListener("click", sendEof);
  $("terminal-kill").addEventListener("click", () => sessionSend({ type: "kill" }));
  $("language").addEventListener("change", () => languageChanged().catch(() => {}));
  $("run").addEventListener("click", run);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.defaultPrevented) {
      e.preventDefault();
      run();
    }
  });
  window.addEventListener("popstate", () => {
    if (location.pathname !== shownPath) location.reload(); // not for a #fragment (the skip link)
  });
  await setUpEditor();
  try {
    await withKey(loadLanguages);
  } catch (err) {
    failed(err);
    return;
  }
  await languageChanged().catch(() => {}); // without its syntax the editor still edits
  const shared = location.pathname.match(/^\/s\/([^/]+)$/);
  if (shared) {
    // Its code and result first: a run started before they came would be painted over.
    const opening = openShared(shared[1]);
    await Promise.race([opening, new Promise((resolve) => setTimeout(resolve, 2000))]);
  } else selectTab($("tab-run"));
  $("run").disabled = false;
  document.body.dataset.ready = "1";
  performance.mark("cellblock-ready"); // when the page can be used (load/bench_web.py)
}

start();
