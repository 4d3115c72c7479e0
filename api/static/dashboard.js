// The operations dashboard (/dashboard). This module owns everything under <main id="dashboard">:
// it polls GET /v1/dashboard every 2 s (never two polls at once; not while the tab is hidden or
// the person paused it) and redraws, from each answer, the tiles, the two plots (inline SVG)
// and the three tables. A failed poll keeps the last answer on screen and says why in a banner.
// Whatever the API returns goes into the page as text only (el(), textContent), never as markup.

import { ApiError, api, el, formatSeconds, keyDialog } from "/static/common.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const NEED_KEY = "The dashboard needs an admin API key";
const HOUR_S = 3600;
const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT_H = 220;
const MARGIN = { top: 12, right: 16, bottom: 38, left: 56 };
const PERCENTILES = ["p50", "p95", "p99"];
const STAGES = ["queue_wait", "compile", "run", "total", "jail_overhead"];
// core/models.py Verdict, in its order; a verdict not listed here still shows, after these.
const VERDICTS = [
  "accepted", "wrong_answer", "time_limit_exceeded", "memory_limit_exceeded", "output_limit_exceeded",
  "runtime_error", "compilation_error", "security_violation", "checker_error", "internal_error",
];

// generation: counts pauses, so that an answer that comes after one is dropped.
const state = { okAt: 0, data: null, inFlight: false, paused: false, blocked: false, timer: 0, error: "", generation: 0 };
let ask = () => Promise.resolve(false);

// ------------------------------------------------------------------ polling

const running = () => !state.paused && !state.blocked && !document.hidden;

function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = running() ? setTimeout(poll, delay) : 0;
}

async function poll() {
  clearTimeout(state.timer);
  if (state.inFlight || !running()) return;
  state.inFlight = true;
  let delay = POLL_MS;
  const generation = state.generation;
  try {
    const data = await api("/v1/dashboard");
    if (generation !== state.generation) return; // paused while it was on its way: not shown
    state.data = data;
    render(data);
    state.okAt = Date.now();
    showError("");
  } catch (err) {
    delay = failed(err);
  } finally {
    state.inFlight = false;
    showUpdated();
    schedule(delay);
  }
}

/** Say what went wrong; returns how long to wait before the next poll. 401/403 stop polling
 * until a key is saved (asking again every 2 s would be no use). */
function failed(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    state.blocked = true;
    showError(err.status === 401 ? `${NEED_KEY} (${err.message}).` : err.message, true);
    if (err.status === 401) askKey();
    return POLL_MS;
  }
  if (err instanceof ApiError) {
    showError(err.message);
    const wait = Number(err.retryAfter);
    return wait > 0 ? Math.max(POLL_MS, wait * 1000) : POLL_MS;
  }
  console.error(err);
  showError(`Could not update: ${err.message}`);
  return POLL_MS;
}

function askKey() {
  if (!$("key-dialog").open) ask(NEED_KEY);
}

function toggle() {
  state.paused = !state.paused;
  const button = $("refresh-toggle");
  button.setAttribute("aria-pressed", String(!state.paused));
  showUpdated();
  if (state.paused) {
    state.generation += 1;
    clearTimeout(state.timer);
  } else poll();
}

// ------------------------------------------------------------------ status line and banner

/** A coarse age (the line is not a live region: a screen reader is not told every 5 s). */
function ago(ms) {
  const s = ms / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s / 5) * 5} s ago`;
  if (s < HOUR_S) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / HOUR_S)} h ago`;
}

function showUpdated() {
  let text = state.okAt ? `Last updated ${ago(Date.now() - state.okAt)}` : state.error ? "Not loaded" : "Loading…";
  if (state.paused) text = `Paused. ${text}`;
  const line = $("updated");
  if (line.textContent !== text) line.textContent = text;
}

/** The banner (inside the role=alert region): rebuilt only when its message changes. */
function showError(message, offerKey = false) {
  const id = message ? `${offerKey}:${message}` : "";
  if (id === state.error) return;
  state.error = id;
  if (!message) return $("error-region").replaceChildren();
  const keyButton = offerKey ? el("button", { type: "button", id: "error-key", onclick: () => ask(NEED_KEY) }, "Enter an API key") : null;
  $("error-region").replaceChildren(
    el("div", { class: "banner row spread", id: "error-banner" }, el("p", { id: "error-text" }, message), keyButton),
  );
}

// ------------------------------------------------------------------ formatting

const sum = (items, field) => items.reduce((total, item) => total + (Number(item[field]) || 0), 0);
const count = (n) => (n === null || n === undefined ? "–" : String(n));
const human = (name) => String(name).replaceAll("_", " ");
const round = (n) => Math.round(n * 10) / 10;

/** An age: "850 ms", "12.00 s", "3 min 5 s", "2 h 10 min". */
function formatAge(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return formatSeconds(s);
  if (s < HOUR_S) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / HOUR_S)} h ${Math.floor((s % HOUR_S) / 60)} min`;
}

/** A quantile of the stage histograms: at their highest bound it is "at least" that. */
function formatQuantile(s) {
  const top = state.data?.quantile_ceiling;
  return typeof s === "number" && top && s >= top ? `≥ ${formatAge(top)}` : formatSeconds(s);
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 1000) / 10}%`;
}

/** An axis tick in seconds: 0.005 -> "5 ms", 2 -> "2 s". */
function tickSeconds(v) {
  return v < 1 ? `${+(v * 1000).toPrecision(3)} ms` : `${+v.toPrecision(3)} s`;
}

function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function setText(id, text) {
  $(id).textContent = text;
}

// ------------------------------------------------------------------ rendering

function render(d) {
  renderTiles(d);
  renderPlots(d);
  renderWorkers(d.workers || []);
  renderVerdicts(d.verdicts || {});
  renderStages(d.stages || {});
  $("auth-note").hidden = d.auth !== false;
  document.body.dataset.updated = String(d.now);
  document.body.dataset.ready = "1";
  // The first render: when the page can be used (load/bench_web.py).
  if (!performance.getEntriesByName("cellblock-ready").length) performance.mark("cellblock-ready");
}

function renderTiles(d) {
  const queue = d.queue || {};
  const workers = d.workers || [];
  const minutes = d.minutes || [];
  const totals = d.totals || {};
  const errors = totals.internal_errors || {};
  const cache = totals.compile_cache || {};
  setText("tile-queue-depth", count(queue.depth));
  setText("tile-queue-oldest", queue.depth ? formatAge(queue.oldest_age) : "–");
  setText("tile-workers", `${workers.filter((w) => w.state === "busy").length} / ${workers.length}`);
  setText("tile-finished-hour", String(sum(minutes, "finished")));
  setText("tile-finished-note", `${count(totals.finished)} all time`);
  setText("tile-internal-errors", String((errors.worker || 0) + (errors.api || 0)));
  setText("tile-internal-errors-note", `worker ${count(errors.worker)} · API ${count(errors.api)}; ${sum(minutes, "internal_errors")} in the last hour`);
  setText("tile-sandbox-faults", count(totals.sandbox_faults));
  setText("tile-sandbox-faults-note", `${sum(minutes, "sandbox_faults")} in the last hour`);
  setText("tile-cache-hit-rate", percent(cache.hit_rate));
  const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;
  setText("tile-cache-note", `${plural(cache.hits, "hit", "hits")} · ${plural(cache.misses, "miss", "misses")}`);
}

// ------------------------------------------------------------------ plots (inline SVG)

/** An SVG element with attributes and children (strings become text nodes). */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Fit the viewBox to the drawn width, so text keeps its size on a phone; the plot area. */
function frame(node) {
  const width = Math.max(300, Math.round(node.getBoundingClientRect().width) || 480);
  node.setAttribute("viewBox", `0 0 ${width} ${PLOT_H}`);
  return { x0: MARGIN.left, x1: width - MARGIN.right, y0: PLOT_H - MARGIN.bottom, y1: MARGIN.top };
}

/** x of a time `dt` seconds from now (-3600 … 0). */
function xAt(f, dt) {
  const clamped = Math.max(-HOUR_S, Math.min(0, dt));
  return round(f.x0 + ((clamped + HOUR_S) / HOUR_S) * (f.x1 - f.x0));
}

/** x within minute slot `i` of `n` (the last one: the minute in progress, ending at "now"). */
function slotX(f, i, n, within) {
  return round(f.x0 + ((i + within) / n) * (f.x1 - f.x0));
}

function xAxis(f) {
  const g = svg("g", { class: "axis" }, svg("line", { class: "axis-line", x1: f.x0, x2: f.x1, y1: f.y0, y2: f.y0 }));
  for (const minutes of [-60, -45, -30, -15, 0]) {
    const x = xAt(f, minutes * 60);
    g.append(
      svg("line", { class: "axis-line", x1: x, x2: x, y1: f.y0, y2: f.y0 + 4 }),
      svg("text", { x, y: f.y0 + 17, "text-anchor": minutes ? "middle" : "end" }, minutes ? `−${-minutes}` : "now"),
    );
  }
  g.append(svg("text", { class: "axis-title", x: round((f.x0 + f.x1) / 2), y: f.y0 + 33, "text-anchor": "middle" }, "minutes ago"));
  return g;
}

function yAxis(f, ticks, y, format) {
  const g = svg("g", { class: "axis" });
  for (const v of ticks) {
    const py = y(v);
    g.append(
      svg("line", { class: "grid", x1: f.x0, x2: f.x1, y1: py, y2: py }),
      svg("text", { x: f.x0 - 6, y: py, dy: "0.32em", "text-anchor": "end" }, format(v)),
    );
  }
  return g;
}

/** Ticks 0, step, 2·step … up to at least `max`, step a whole 1/2/5×10^k. */
function linearTicks(max) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((k) => k * magnitude).find((s) => s >= raw));
  const ticks = [];
  for (let v = 0; v < max + step; v += step) ticks.push(v);
  return ticks;
}

/** Decades around [min, max] (and 2, 5 in between when the range is narrow). */
function logTicks(min, max) {
  const a = Math.floor(Math.log10(min));
  const b = Math.max(a + 1, Math.ceil(Math.log10(max)));
  const steps = b - a <= 2 ? [1, 2, 5] : [1];
  const ticks = [];
  for (let e = a; e <= b; e += 1) for (const s of steps) if (e < b || s === 1) ticks.push(s * 10 ** e);
  return { ticks, lo: 10 ** a, hi: 10 ** b };
}

function renderPlots(d) {
  renderThroughput(d);
  renderLatency(d);
}

function label(node, text, parts) {
  node.setAttribute("aria-label", text);
  node.replaceChildren(svg("title", {}, text), ...parts);
}

function renderThroughput(d) {
  const node = $("plot-throughput");
  const f = frame(node);
  const minutes = d.minutes || [];
  const total = sum(minutes, "finished");
  const peak = Math.max(0, ...minutes.map((m) => Number(m.finished) || 0));
  const ticks = linearTicks(peak);
  const top = ticks[ticks.length - 1];
  const y = (v) => round(f.y0 - (v / top) * (f.y0 - f.y1));
  const bars = minutes
    .map((m, i) => [m, i])
    .filter(([m]) => m.finished > 0)
    .map(([m, i]) => {
      const left = slotX(f, i, minutes.length, 0);
      const right = slotX(f, i, minutes.length, 1);
      const what = `${m.finished} finished in the minute from ${clock(m.t)}`;
      return svg("rect", { class: "tp-bar", x: round(left + 0.5), y: y(m.finished), width: Math.max(1, round(right - left - 1)), height: round(f.y0 - y(m.finished)) }, svg("title", {}, what));
    });
  const text = `Finished per minute over the last hour: ${total} in total, at most ${peak} in one minute`;
  label(node, text, [yAxis(f, ticks, y, String), xAxis(f), ...bars]);
}

function renderLatency(d) {
  const node = $("plot-latency");
  const f = frame(node);
  const minutes = d.minutes || [];
  const values = minutes.flatMap((m) => PERCENTILES.map((p) => m[p])).filter((v) => typeof v === "number" && v > 0);
  const text = latencySummary(minutes, values);
  if (!values.length) {
    const empty = svg("text", { class: "empty", x: round((f.x0 + f.x1) / 2), y: round((f.y0 + f.y1) / 2), "text-anchor": "middle" }, "Nothing finished in the last hour");
    return label(node, text, [xAxis(f), empty]);
  }
  const { ticks, lo, hi } = logTicks(Math.min(...values), Math.max(...values));
  const y = (v) => round(f.y0 - (Math.log10(Math.max(v, lo) / lo) / Math.log10(hi / lo)) * (f.y0 - f.y1));
  label(node, text, [yAxis(f, ticks, y, tickSeconds), xAxis(f), ...PERCENTILES.map((p) => series(f, d, p, y))]);
}

/** A lone point of a series, its shape telling the series (not its colour alone): p50 a
 * circle, p95 a square, p99 a diamond (as the legend shows). */
function marker(key, x, y) {
  if (key === "p50") return svg("circle", { class: "dot", cx: x, cy: y, r: 3.5 });
  if (key === "p95") return svg("rect", { class: "dot", x: x - 3.5, y: y - 3.5, width: 7, height: 7 });
  return svg("path", { class: "dot", d: `M${x} ${y - 4.5}L${x + 4.5} ${y}L${x} ${y + 4.5}L${x - 4.5} ${y}Z` });
}

/** One percentile's line, broken where a minute has no value; a lone point is a marker. */
function series(f, d, key, y) {
  const g = svg("g", { class: `series ${key}` });
  let path = "";
  let run = [];
  const flush = () => {
    if (run.length === 1) g.append(marker(key, run[0][0], run[0][1]));
    else if (run.length) path += `M${run.map(([x, py]) => `${x} ${py}`).join("L")}`;
    run = [];
  };
  const minutes = d.minutes || [];
  minutes.forEach((m, i) => {
    if (typeof m[key] === "number") run.push([slotX(f, i, minutes.length, 0.5), y(m[key])]);
    else flush();
  });
  flush();
  if (path) g.prepend(svg("path", { class: "line", d: path }));
  return g;
}

function latencySummary(minutes, values) {
  const head = "Latency per minute over the last hour";
  if (!values.length) return `${head}: nothing finished`;
  const latest = [...minutes].reverse().find((m) => PERCENTILES.some((p) => typeof m[p] === "number"));
  const now = PERCENTILES.map((p) => `${p} ${formatQuantile(latest[p])}`).join(", ");
  const p99s = minutes.map((m) => m.p99).filter((v) => typeof v === "number");
  const worst = p99s.length ? `; highest p99 ${formatQuantile(Math.max(...p99s))}` : "";
  return `${head}: latest minute with data ${now}${worst}`;
}

// ------------------------------------------------------------------ tables

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "empty" }, text));
}

function renderWorkers(workers) {
  const rows = [...workers].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const body = $("workers-table").tBodies[0];
  if (!rows.length) return body.replaceChildren(emptyRow(7, "no live workers"));
  body.replaceChildren(...rows.map(workerRow));
}

function workerRow(w) {
  const kind = w.state === "busy" || w.state === "idle" ? w.state : "other";
  const heartbeat = w.last_heartbeat_age === null || w.last_heartbeat_age === undefined ? "–" : `${formatAge(w.last_heartbeat_age)} ago`;
  return el(
    "tr",
    {},
    el("th", { scope: "row" }, w.name ?? "–"),
    el("td", {}, w.hostname ?? "–"),
    el("td", { class: "num" }, count(w.pid)),
    el("td", {}, el("span", { class: `worker-state worker-${kind}` }, w.state ?? "unknown")),
    el("td", { class: "mono" }, w.current_job || "—"),
    el("td", { class: "num" }, `${count(w.successful_jobs)} / ${count(w.failed_jobs)}`),
    el("td", { class: "num" }, heartbeat),
  );
}

/** The verdicts any language has, known ones in their usual order, then the others by name. */
function verdictColumns(rows) {
  const present = new Set(rows.flatMap((row) => Object.keys(row.counts).filter((v) => row.counts[v] > 0)));
  const others = [...present].filter((v) => !VERDICTS.includes(v)).sort();
  return [...VERDICTS.filter((v) => present.has(v)), ...others];
}

const mixClass = (verdict) => `mix-${VERDICTS.includes(verdict) ? verdict : "other"}`;

function renderVerdicts(verdicts) {
  const rows = Object.entries(verdicts)
    .map(([language, counts]) => ({ language, counts: counts || {}, total: Object.values(counts || {}).reduce((t, n) => t + (Number(n) || 0), 0) }))
    .sort((a, b) => b.total - a.total || a.language.localeCompare(b.language));
  const columns = verdictColumns(rows);
  const table = $("verdicts-table");
  table.tHead.replaceChildren(
    el(
      "tr",
      {},
      el("th", { scope: "col" }, "Language"),
      el("th", { scope: "col", class: "num" }, "Total"),
      el("th", { scope: "col" }, "Mix"),
      columns.map((v) => el("th", { scope: "col", class: "num", "data-verdict": v }, el("span", { class: `swatch ${mixClass(v)}`, "aria-hidden": "true" }), human(v))),
    ),
  );
  const body = table.tBodies[0];
  if (!rows.length) return body.replaceChildren(emptyRow(3, "nothing finished yet"));
  body.replaceChildren(...rows.map((row) => verdictRow(row, columns)));
}

function verdictRow(row, columns) {
  return el(
    "tr",
    { "data-language": row.language },
    el("th", { scope: "row" }, row.language),
    el("td", { class: "num" }, String(row.total)),
    el("td", {}, mixBar(row, columns)),
    columns.map((v) => el("td", { class: "num", "data-verdict": v }, String(row.counts[v] || 0))),
  );
}

/** A bar split in proportion to the verdicts (decoration: the numbers are in the row). */
function mixBar(row, columns) {
  const segments = columns
    .filter((v) => row.counts[v] > 0)
    .map((v) => {
      const share = (row.counts[v] / row.total) * 100;
      const segment = el("span", { class: `segment ${mixClass(v)}`, title: `${human(v)}: ${row.counts[v]} (${Math.round(share)}%)` });
      segment.style.width = `${share}%`;
      return segment;
    });
  return el("span", { class: "mix", "aria-hidden": "true" }, segments);
}

function renderStages(stages) {
  const names = [...STAGES.filter((s) => s in stages), ...Object.keys(stages).filter((s) => !STAGES.includes(s)).sort()];
  const body = $("stages-table").tBodies[0];
  if (!names.length) return body.replaceChildren(emptyRow(5, "no stage timings yet"));
  body.replaceChildren(
    ...names.map((name) => {
      const s = stages[name] || {};
      return el(
        "tr",
        { "data-stage": name },
        el("th", { scope: "row" }, human(name)),
        el("td", { class: "num" }, count(s.count)),
        PERCENTILES.map((p) => el("td", { class: "num" }, formatQuantile(s[p]))),
      );
    }),
  );
}

// ------------------------------------------------------------------ start

function start() {
  ask = keyDialog();
  // After keyDialog's own listener has stored the key: a saved key unblocks and polls at once.
  $("key-dialog").addEventListener("close", () => {
    if ($("key-dialog").returnValue !== "save") return;
    state.blocked = false;
    poll();
  });
  $("refresh-toggle").addEventListener("click", toggle);
  document.addEventListener("visibilitychange", () => (document.hidden ? clearTimeout(state.timer) : poll()));
  let pending = false;
  window.addEventListener("resize", () => {
    if (pending || !state.data) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      renderPlots(state.data);
    });
  });
  setInterval(showUpdated, 1000);
  poll();
}

start();
