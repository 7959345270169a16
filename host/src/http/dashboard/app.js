// The dashboard's script: polls the host's /admin routes with the admin token kept in this
// tab's sessionStorage and draws what they answer. No framework, no outside source.
"use strict";

const TOKEN_KEY = "sluice-admin-token";
const SAMPLES = 120; // lag samples kept per consumer (one a second)
const EVENTS_KEPT = 50;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  connected: false,
  lag: new Map(), // consumer -> [lag, ...]
  eventsAfter: null, // position to read events after (null: start near the head)
  events: [],
  history: null, // plugin whose swap history is shown
  busy: new Set(), // actions running, by key, so a button is not pressed twice
  timer: null,
  eventsRunning: false,
  refused: false, // the host refused the token: no more polling until another one is typed
  refreshing: false, // one poll at a time
  shown: { plugins: "", letters: "", deliveries: "" }, // what the tables show, so an unchanged answer keeps its buttons
};

const $ = (id) => document.getElementById(id);

// ---- talking to the host -------------------------------------------------------------------

class HostError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the host answered ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function admin(method, path, body, contentType) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(path, { method, headers, body });
  let answer = null;
  const text = await response.text();
  if (text) {
    try {
      answer = JSON.parse(text);
    } catch (e) {
      answer = { message: text };
    }
  }
  if (!response.ok) throw new HostError(response.status, answer);
  return answer;
}

function say(text, bad) {
  const message = $("message");
  message.textContent = text;
  message.className = bad ? "bad" : "";
  message.hidden = !text;
}

function connection(text, cls) {
  const line = $("connection");
  line.textContent = text;
  line.className = cls || "";
}

// ---- small DOM helpers -------------------------------------------------------------------------

function cell(row, text, cls, title) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  if (title) td.title = title;
  row.appendChild(td);
  return td;
}

function button(label, onClick, dataName) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (dataName) b.dataset.action = dataName;
  b.addEventListener("click", onClick);
  return b;
}

// An RFC 3339 time as "YYYY-MM-DD HH:MM:SS" (UTC), the full value on hover.
function when(time) {
  return time ? time.replace("T", " ").replace(/\.\d+/, "").replace(/(Z|[+-]\d\d:\d\d)$/, "") : "-";
}

function short(sha) {
  return sha ? sha.slice(0, 12) : "-";
}

function statusClass(status) {
  if (status === "running") return "status-running";
  if (status === "catching-up") return "status-catching-up";
  return "status-bad";
}

// Run `work` once at a time per `key`, telling the operator how it went.
async function action(key, what, work) {
  if (state.busy.has(key)) return;
  state.busy.add(key);
  say(`${what}…`);
  try {
    const done = await work();
    say(done || `${what}: done`);
  } catch (e) {
    say(`${what} failed: ${e.message}`, true);
  } finally {
    state.busy.delete(key);
    refresh();
  }
}

// ---- plugins, lag, rebuild -------------------------------------------------------------------

function renderPlugins(list) {
  const seen = JSON.stringify(list);
  if (seen === state.shown.plugins) return;
  state.shown.plugins = seen;
  const body = $("plugins").tBodies[0];
  body.replaceChildren();
  for (const p of list.plugins) {
    const row = document.createElement("tr");
    row.dataset.plugin = p.name;
    cell(row, p.name);
    cell(row, p.kind);
    const status = cell(row, p.status, statusClass(p.status), p.lastError || "");
    status.dataset.field = "status";
    cell(row, short(p.sha256), "mono", p.sha256).dataset.field = "sha256";
    cell(row, p.position, "num").dataset.field = "position";
    cell(row, p.head, "num").dataset.field = "head";
    cell(row, p.lag, "num").dataset.field = "lag";
    const actions = cell(row, "", "actions");
    actions.textContent = "";
    if (p.kind === "projection") actions.appendChild(button("Rebuild", () => rebuild(p.name), "rebuild"));
    actions.appendChild(button("History", () => showHistory(p.name), "history"));
    body.appendChild(row);
  }
  const refused = $("refused");
  refused.hidden = list.refused.length === 0;
  refused.textContent = list.refused.map((r) => `refused ${r.source}: ${r.reason}`).join("\n");
  const running = list.plugins.find((p) => p.rebuild && p.rebuild.running);
  const latest = running || list.plugins.find((p) => p.rebuild && state.busy.has(`rebuild:${p.name}`));
  if (latest) showRebuild(latest.rebuild);
}

function sampleLag(list) {
  const seen = new Set();
  for (const p of list.plugins) {
    if (p.lag === null || p.lag === undefined) continue;
    seen.add(p.name);
    const samples = state.lag.get(p.name) || [];
    samples.push(p.lag);
    if (samples.length > SAMPLES) samples.shift();
    state.lag.set(p.name, samples);
  }
  for (const name of [...state.lag.keys()]) if (!seen.has(name)) state.lag.delete(name);
  drawLag();
}

const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace: a name, nothing is fetched

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes || {})) element.setAttribute(k, String(v));
  return element;
}

function drawLag() {
  const chart = $("lag-chart");
  const [w, h, left, bottom, top] = [640, 180, 44, 16, 8];
  const max = Math.max(1, ...[...state.lag.values()].flat());
  chart.replaceChildren();
  chart.appendChild(svg("line", { x1: left, y1: h - bottom, x2: w, y2: h - bottom, class: "axis" }));
  chart.appendChild(svg("line", { x1: left, y1: top, x2: left, y2: h - bottom, class: "axis" }));
  for (const [text, x, y] of [[String(max), 4, top + 8], ["0", 4, h - bottom], ["2 min ago", left + 2, h - 3], ["now", w - 22, h - 3]]) {
    const label = svg("text", { x, y });
    label.textContent = text;
    chart.appendChild(label);
  }
  const legend = $("lag-legend");
  legend.replaceChildren();
  let i = 0;
  for (const [name, samples] of state.lag) {
    const colour = `c${i % 8}`;
    const step = (w - left) / (SAMPLES - 1);
    const offset = SAMPLES - samples.length;
    const points = samples
      .map((lag, j) => `${(left + (offset + j) * step).toFixed(1)},${(h - bottom - (lag / max) * (h - bottom - top)).toFixed(1)}`)
      .join(" ");
    const line = svg("polyline", { points, class: colour });
    line.dataset.consumer = name;
    chart.appendChild(line);
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${colour}`;
    item.append(swatch, `${name}: lag ${samples[samples.length - 1]}`);
    legend.appendChild(item);
    i += 1;
  }
}

function showRebuild(progress) {
  $("rebuild").hidden = false;
  const of = Math.max(progress.head, progress.position, 1);
  const bar = $("rebuild-bar");
  bar.max = of;
  bar.value = progress.position;
  let label = `Rebuilding ${progress.projection}`;
  if (!progress.running) label = progress.error ? `Rebuild of ${progress.projection} failed: ${progress.error}` : `Rebuilt ${progress.projection}`;
  $("rebuild-label").textContent = label;
  $("rebuild-count").textContent = `${progress.position} / ${progress.head} events`;
  $("rebuild").dataset.running = String(progress.running);
}

async function watchRebuild(name) {
  while (state.busy.has(`rebuild:${name}`)) {
    try {
      const answer = await admin("GET", `/admin/projections/${encodeURIComponent(name)}/rebuild`);
      if (answer.rebuild) showRebuild(answer.rebuild);
    } catch (e) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function rebuild(name) {
  const key = `rebuild:${name}`;
  action(key, `rebuilding ${name}`, async () => {
    const run = admin("POST", `/admin/projections/${encodeURIComponent(name)}/rebuild`);
    watchRebuild(name);
    const answer = await run;
    const final = await admin("GET", `/admin/projections/${encodeURIComponent(name)}/rebuild`);
    if (final.rebuild) showRebuild(final.rebuild);
    return `rebuilt ${name} up to position ${answer.position}`;
  });
}

// ---- swap history -----------------------------------------------------------------------------

async function showHistory(name) {
  state.history = name;
  $("history-section").hidden = false;
  await renderHistory();
}

async function renderHistory() {
  const name = state.history;
  if (!name) return;
  let list;
  try {
    list = await admin("GET", `/admin/plugins/${encodeURIComponent(name)}/versions`);
  } catch (e) {
    say(`history of ${name}: ${e.message}`, true);
    return;
  }
  $("history-title").textContent = `Swap history of ${name}`;
  const body = $("history").tBodies[0];
  body.replaceChildren();
  for (const v of list.versions) {
    const row = document.createElement("tr");
    row.dataset.sha256 = v.sha256;
    cell(row, short(v.sha256) + (v.active ? " (running)" : ""), "mono", v.sha256);
    cell(row, v.size, "num");
    cell(row, v.source);
    cell(row, when(v.firstSeen), "time", v.firstSeen);
    cell(row, when(v.lastActivated), "time", v.lastActivated);
    const actions = cell(row, "", "actions");
    actions.textContent = "";
    if (!v.active) {
      actions.appendChild(
        button("Roll back to this", () =>
          action(`activate:${name}`, `activating ${short(v.sha256)} of ${name}`, async () => {
            await admin("POST", `/admin/plugins/${encodeURIComponent(name)}/versions/${v.sha256}/activate`);
            await renderHistory();
            return `${name} runs ${short(v.sha256)} again`;
          }), "activate"),
      );
    }
    body.appendChild(row);
  }
}

// ---- dead letters -----------------------------------------------------------------------------

function renderLetters(list) {
  const seen = JSON.stringify(list.letters);
  if (seen === state.shown.letters) return;
  state.shown.letters = seen;
  const body = $("letters").tBodies[0];
  body.replaceChildren();
  for (const l of list.letters) {
    const row = document.createElement("tr");
    row.dataset.letter = String(l.id);
    cell(row, l.id, "num");
    cell(row, l.consumer);
    cell(row, `${l.aggregateType} ${l.aggregateId}`);
    cell(row, `${l.eventType} v${l.schemaVersion}`);
    cell(row, l.position, "num");
    cell(row, l.attempts, "num");
    cell(row, l.reason, "", l.reason);
    cell(row, (l.blockedBehind || []).length, "num");
    const actions = cell(row, "", "actions");
    actions.textContent = "";
    actions.appendChild(
      button("Retry", () =>
        action(`letter:${l.id}`, `retrying letter ${l.id}`, async () => {
          const outcome = await admin("POST", `/admin/dead-letters/${l.id}/retry`);
          if (outcome.failed) throw new Error(`failed again: ${outcome.failed.reason}`);
          return `retried letter ${l.id}: applied ${outcome.applied.length} event(s)`;
        }), "retry"),
    );
    actions.appendChild(
      button("Drop", () => {
        if (!window.confirm(`Drop letter ${l.id}? Its event is skipped for ${l.consumer} for good.`)) return;
        action(`letter:${l.id}`, `dropping letter ${l.id}`, async () => {
          await admin("DELETE", `/admin/dead-letters/${l.id}?by=dashboard`);
          return `dropped letter ${l.id}`;
        });
      }, "drop"),
    );
    body.appendChild(row);
  }
  $("letters-empty").hidden = list.letters.length > 0;
}

// Reactors' messages whose delivery retries ran out: retried under the same message id, or
// dropped (never sent; the host records who and when).
function renderDeliveries(list) {
  const deliveries = list.deliveries || [];
  const seen = JSON.stringify(deliveries);
  if (seen === state.shown.deliveries) return;
  state.shown.deliveries = seen;
  const body = $("deliveries").tBodies[0];
  body.replaceChildren();
  for (const d of deliveries) {
    const row = document.createElement("tr");
    row.dataset.delivery = d.id;
    cell(row, d.messageId, "mono", d.id);
    cell(row, d.consumer);
    cell(row, d.channel);
    cell(row, d.key);
    cell(row, d.position, "num");
    cell(row, d.attempts, "num");
    cell(row, d.reason, "", d.reason);
    cell(row, when(d.parkedAt), "time", d.parkedAt);
    const actions = cell(row, "", "actions");
    actions.textContent = "";
    const path = `/admin/dead-letters/${encodeURIComponent(d.id)}`;
    actions.appendChild(
      button("Retry", () =>
        action(`delivery:${d.id}`, `sending ${d.messageId} again`, async () => {
          await admin("POST", `${path}/retry`);
          return `${d.messageId} is pending again (same message id)`;
        }), "retry"),
    );
    actions.appendChild(
      button("Drop", () => {
        if (!window.confirm(`Drop ${d.messageId}? It is never sent to ${d.channel}.`)) return;
        action(`delivery:${d.id}`, `dropping ${d.messageId}`, async () => {
          await admin("DELETE", `${path}?by=dashboard`);
          return `dropped ${d.messageId}`;
        });
      }, "drop"),
    );
    body.appendChild(row);
  }
  $("deliveries-empty").hidden = deliveries.length > 0;
}

// ---- live events ------------------------------------------------------------------------------

function renderEvents() {
  const body = $("events").tBodies[0];
  body.replaceChildren();
  for (const e of state.events) {
    const row = document.createElement("tr");
    row.dataset.position = String(e.position);
    cell(row, e.position, "num");
    cell(row, `${e.eventType} v${e.schemaVersion}`);
    cell(row, `${e.aggregateType} ${e.aggregateId}`);
    cell(row, e.version, "num");
    cell(row, (e.recordedAt || "").replace(/^.*T/, "").replace(/Z$/, ""), "time", e.recordedAt);
    const data = JSON.stringify(e.data);
    cell(row, data, "mono data", data);
    body.appendChild(row);
  }
}

// Follow the log with long polls; the newest events first, the last EVENTS_KEPT of them.
async function followEvents() {
  if (state.eventsRunning) return;
  state.eventsRunning = true;
  try {
    while (state.connected) {
      if (state.eventsAfter === null) {
        const first = await admin("GET", "/admin/events?limit=1");
        state.eventsAfter = Math.max(0, first.head - EVENTS_KEPT);
      }
      const page = await admin("GET", `/admin/events?after=${state.eventsAfter}&limit=${EVENTS_KEPT}&wait_ms=10000`);
      state.eventsAfter = page.nextAfter;
      if (page.events.length) {
        state.events = page.events.reverse().concat(state.events).slice(0, EVENTS_KEPT);
        renderEvents();
      }
      $("events-live").textContent = `(live, head ${page.head})`;
    }
  } catch (e) {
    $("events-live").textContent = `(stopped: ${e.message})`;
    disconnect(e);
  } finally {
    state.eventsRunning = false;
  }
}

// ---- the poll loop ----------------------------------------------------------------------------

function disconnect(e) {
  state.connected = false;
  if (e instanceof HostError && (e.status === 401 || e.status === 403)) {
    state.refused = true;
    connection(`Not connected: ${e.message}`, "bad");
  } else {
    connection(`Lost the host: ${e.message}`, "bad");
  }
}

async function refresh() {
  if (!state.token || state.refused || state.refreshing) return;
  state.refreshing = true;
  try {
    const [plugins, letters] = await Promise.all([admin("GET", "/admin/plugins"), admin("GET", "/admin/dead-letters")]);
    const wasConnected = state.connected;
    state.connected = true;
    connection(`Connected: ${plugins.plugins.length} plugin(s)`, "ok");
    renderPlugins(plugins);
    sampleLag(plugins);
    renderLetters(letters);
    renderDeliveries(letters);
    if (!wasConnected) followEvents();
  } catch (e) {
    disconnect(e);
  } finally {
    state.refreshing = false;
  }
}

function start() {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    state.refused = false;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    say("");
    refresh();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    state.connected = false;
    $("token").value = "";
    connection("Not connected: type the admin token (the host's --admin-token).");
  });
  $("history-close").addEventListener("click", () => {
    state.history = null;
    $("history-section").hidden = true;
  });
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("upload-name").value.trim();
    const file = $("upload-file").files[0];
    if (!name || !file) return;
    const force = $("upload-force").checked ? "?force=true" : "";
    action(`upload:${name}`, `uploading ${file.name} as ${name}`, async () => {
      const answer = await admin("PUT", `/admin/plugins/${encodeURIComponent(name)}${force}`, file, "application/wasm");
      const how = answer.created ? "installed" : answer.replaced ? "replaced" : "unchanged";
      if (state.history === name) await renderHistory();
      return `${name} ${how}: now ${short(answer.plugin && answer.plugin.sha256)}`;
    });
  });
  refresh();
  state.timer = setInterval(refresh, 1000);
}

document.addEventListener("DOMContentLoaded", start);
