// The otel-sysops local page: reads /api/v1/ and follows /api/v1/events. No dependencies.
"use strict";

const API = "/api/v1/";
const WINDOW = 15 * 60; // seconds of history drawn
const COLORS = ["#4fb3ff", "#f0883e", "#3fb950", "#d2a8ff", "#ff7b72", "#e3b341"];
let interval = 10; // seconds between ticks (from status)
const charts = new Map(); // key -> {def, lines: Map(label -> {t: [], v: []}), canvas, legend}

const $ = (sel) => document.querySelector(sel);
const token = () => sessionStorage.getItem("sysops.token") || "";

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(API + path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "title") node.title = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

// -- formatting ----------------------------------------------------------------------------

function human(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "ratio") return (value * 100).toFixed(value < 0.1 ? 1 : 0) + " %";
  if (unit === "By" || unit === "By/s") {
    const steps = ["B", "kB", "MB", "GB", "TB"];
    let v = Math.abs(value), i = 0;
    while (v >= 1000 && i < steps.length - 1) { v /= 1000; i += 1; }
    return (value < 0 ? "-" : "") + v.toFixed(v < 10 && i ? 1 : 0) + " " + steps[i] + (unit === "By/s" ? "/s" : "");
  }
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function ago(ts) {
  if (!ts) return "–";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

const clock = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "–");
const attrs = (a) => Object.entries(a || {}).map(([k, v]) => k + "=" + v).join(", ");
const sev = (name) => el("span", { class: "sev " + name }, name);

function duration(seconds) {
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}

// -- charts ----------------------------------------------------------------------------------

function seriesParams(query) {
  const p = new URLSearchParams({ metric: query.metric, since: WINDOW + "s" });
  for (const m of query.match) p.append("match", m);
  if (query.rate) p.set("rate", "true");
  if (query.sum_by !== null) p.set("sum_by", query.sum_by);
  return p.toString();
}

async function loadCharts() {
  const { charts: defs } = await api("charts");
  const host = $("#charts");
  host.replaceChildren();
  for (const def of defs) {
    const canvas = el("canvas");
    const legend = el("div", { class: "legend" });
    host.append(el("div", { class: "chart", "data-chart": def.key }, el("h3", {}, def.title, el("span", {}, def.unit === "ratio" ? "%" : def.unit)), canvas, legend));
    const chart = { def, lines: new Map(), canvas, legend };
    charts.set(def.key, chart);
    for (const query of def.queries) {
      try {
        const doc = await api("series?" + seriesParams(query));
        for (const s of doc.series) {
          const line = { t: [], v: [] };
          doc.timestamps.forEach((t, i) => { if (s.values[i] !== null) { line.t.push(t); line.v.push(s.values[i]); } });
          // The chart's own label when it names one (the tick events use the same).
          chart.lines.set(query.label || s.label, line);
        }
      } catch (err) {
        legend.textContent = err.message;
      }
    }
    draw(chart);
  }
}

function addPoint(chart, label, t, v) {
  if (v === null || v === undefined) return;
  let line = chart.lines.get(label);
  if (!line) { line = { t: [], v: [] }; chart.lines.set(label, line); }
  if (line.t.length && t <= line.t[line.t.length - 1]) return;
  line.t.push(t); line.v.push(v);
  while (line.t.length && line.t[0] < t - WINDOW) { line.t.shift(); line.v.shift(); }
}

function draw(chart) {
  const { canvas, def } = chart;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  // Span what is held, from a minute up to the window, so a young agent's charts are readable.
  const now = Date.now() / 1000;
  let first = now;
  for (const line of chart.lines.values()) if (line.t.length && line.t[0] < first) first = line.t[0];
  const span = Math.min(WINDOW, Math.max(20, 10 * interval, now - first));
  const t0 = now - span;
  let max = def.unit === "ratio" ? 1 : 0;
  for (const line of chart.lines.values()) for (const v of line.v) if (v > max) max = v;
  if (max <= 0) max = 1;
  max *= def.unit === "ratio" ? 1 : 1.1;
  const left = 58, bottom = h - 16, top = 6, right = w - 4;
  const x = (t) => left + ((t - t0) / span) * (right - left);
  const y = (v) => bottom - (v / max) * (bottom - top);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8593a1"; ctx.strokeStyle = "#27303a"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(right, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(human(v, def.unit), left - 6, yy + 4);
  }
  ctx.textAlign = "center";
  for (const part of [1, 2 / 3, 1 / 3, 0]) {
    const back = span * part;
    const text = part === 0 ? "now" : "-" + (back >= 120 ? Math.round(back / 60) + " min" : Math.round(back) + " s");
    ctx.fillText(text, Math.max(left + 14, Math.min(right - 14, x(now - back))), h - 3);
  }
  const legend = [];
  let i = 0;
  for (const [label, line] of chart.lines) {
    const color = COLORS[i % COLORS.length]; i += 1;
    ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.beginPath();
    let started = false, prev = null;
    line.t.forEach((t, k) => {
      if (t < t0) return;
      // A gap of more than three points' worth breaks the line.
      if (!started || (prev !== null && t - prev > 30)) ctx.moveTo(x(t), y(line.v[k])); else ctx.lineTo(x(t), y(line.v[k]));
      started = true; prev = t;
    });
    ctx.stroke();
    const last = line.v.length ? line.v[line.v.length - 1] : null;
    const swatch = el("i"); swatch.style.background = color;
    legend.push(el("span", {}, swatch, label + " ", el("b", {}, human(last, def.unit))));
  }
  chart.legend.replaceChildren(...(legend.length ? legend : [el("span", {}, "no data yet")]));
}

function redrawAll() { for (const chart of charts.values()) draw(chart); }

// -- tables ---------------------------------------------------------------------------------

function renderTop(top) {
  const rows = (top || []).map((p) => el("tr", {},
    el("td", {}, p.pid ?? ""), el("td", {}, p.name), el("td", {}, p.owner),
    el("td", { class: "num" }, el("span", { class: "bar", title: "CPU" }, ""), human(p.cpu, "ratio")),
    el("td", { class: "num" }, human(p.memory, "By"))));
  rows.forEach((row, i) => { row.querySelector(".bar").style.width = Math.max(2, Math.min(60, (top[i].cpu || 0) * 60)) + "px"; });
  $("#top tbody").replaceChildren(...rows);
}

async function unsilence(id) {
  try { await api("silences/" + encodeURIComponent(id), { method: "DELETE" }); } catch (err) { alert(err.message); }
  refreshAlerts();
}

async function silence(alertDoc) {
  const hours = prompt("Silence alerts of rule " + alertDoc.rule + " on this series for how many hours?", "2");
  if (!hours) return;
  const matchers = Object.assign({ rule: alertDoc.rule }, alertDoc.attributes);
  try {
    await api("silences", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ matchers, duration: Number(hours) * 3600, comment: "from the local page", created_by: "page" }) });
  } catch (err) { alert(err.message); }
  refreshAlerts();
}

async function refreshAlerts() {
  try {
    const { alerts } = await api("alerts");
    $("#alert-count").textContent = alerts.length ? "(" + alerts.length + ")" : "";
    $("#alerts-empty").hidden = alerts.length > 0;
    $("#alerts").hidden = alerts.length === 0;
    $("#alerts tbody").replaceChildren(...alerts.map((a) => {
      const action = a.silenced_by
        ? el("button", { type: "button", onclick: () => unsilence(a.silenced_by) }, "unsilence")
        : el("button", { type: "button", onclick: () => silence(a) }, "silence");
      return el("tr", { class: a.silenced_by ? "silenced" : "" },
        el("td", {}, sev(a.severity), a.silenced_by ? el("span", { class: "tag" }, "silenced") : ""),
        el("td", {}, a.rule), el("td", { class: "attrs" }, a.metric + (a.attributes && Object.keys(a.attributes).length ? " {" + attrs(a.attributes) + "}" : "")),
        el("td", { class: "num" }, a.value === null ? "–" : human(a.value)), el("td", {}, ago(a.starts_at)), el("td", {}, a.message), el("td", {}, action));
    }));
  } catch (err) { $("#alerts-empty").textContent = err.message; }
  refreshHistory();
}

async function refreshHistory() {
  try {
    const doc = await api("alerts/history?limit=50");
    $("#history-count").textContent = doc.total ? "(" + doc.total + ")" : "";
    $("#history-empty").hidden = doc.alerts.length > 0;
    $("#history").hidden = doc.alerts.length === 0;
    $("#history tbody").replaceChildren(...doc.alerts.map((a) => el("tr", {},
      el("td", {}, sev(a.severity)), el("td", {}, a.rule), el("td", { class: "attrs" }, attrs(a.attributes) || a.metric),
      el("td", { title: clock(a.fired_at) }, ago(a.fired_at)),
      el("td", {}, a.resolved_at ? duration(a.resolved_at - a.fired_at) + " later" + (a.end_reason === "resolved" ? "" : " (" + a.end_reason + ")") : el("span", { class: "bad" }, "firing")),
      el("td", {}, a.notifications.length ? [...new Set(a.notifications.map((n) => n.channel + (n.delivered ? " ✓" : " ✗")))].join(", ") : "–"),
      el("td", {}, a.message))));
  } catch (err) { $("#history-empty").textContent = err.message; }
}

async function refreshAnomalies() {
  try {
    const { anomalies } = await api("anomalies?limit=10");
    $("#anomalies-empty").hidden = anomalies.length > 0;
    $("#anomalies").hidden = anomalies.length === 0;
    $("#anomalies tbody").replaceChildren(...anomalies.map((a) => el("tr", {},
      el("td", {}, a.metric), el("td", { class: "attrs" }, attrs(a.attributes) || "–"), el("td", { class: "num" }, a.score.toFixed(2)),
      el("td", { class: "num" }, human(a.value)), el("td", { title: clock(a.since) }, ago(a.since)))));
  } catch (err) { $("#anomalies-empty").textContent = err.message; }
}

async function refreshStatus() {
  try {
    const s = await api("status");
    $("#host").textContent = s.host;
    interval = s.interval;
    document.title = s.host + " · otel-sysops";
    $("#facts").replaceChildren(
      el("span", {}, "version ", el("b", {}, s.version)), el("span", {}, "up ", el("b", {}, duration(s.uptime))),
      el("span", {}, "every ", el("b", {}, s.interval + " s")), el("span", {}, "last tick ", el("b", {}, ago(s.last_tick))));
    const rows = [];
    for (const [name, c] of Object.entries(s.collectors)) {
      const errors = Object.entries(c.errors).map(([k, n]) => k + " ×" + n).join(", ");
      rows.push(el("tr", {}, el("td", {}, "collector"), el("td", {}, name), el("td", { class: c.ok ? "ok" : "bad" }, c.ok ? "ok" : "failing"), el("td", {}, c.last_error || errors)));
    }
    for (const [name, a] of Object.entries(s.analyzers)) {
      const errors = Object.entries(a.errors).map(([k, n]) => k + " ×" + n).join(", ");
      rows.push(el("tr", {}, el("td", {}, "analyzer"), el("td", {}, name), el("td", { class: errors ? "bad" : "ok" }, errors ? "errors" : "ok"), el("td", {}, errors)));
    }
    for (const [name, k] of Object.entries(s.sinks)) {
      const bad = k.failures || k.dropped;
      rows.push(el("tr", {}, el("td", {}, "sink"), el("td", {}, name), el("td", { class: bad ? "bad" : "ok" }, bad ? "failing" : "ok"), el("td", {}, bad ? k.failures + " failures, " + k.dropped + " dropped" : "")));
    }
    const dropped = Object.entries(s.dropped).filter(([, n]) => n).map(([k, n]) => k + " " + n).join(", ");
    rows.push(el("tr", {}, el("td", {}, "dropped"), el("td", {}, ""), el("td", { class: dropped ? "bad" : "ok" }, dropped ? "yes" : "nothing"), el("td", {}, dropped)));
    $("#status tbody").replaceChildren(...rows);
  } catch (err) { $("#facts").textContent = err.message; }
}

async function refreshInventory() {
  try {
    const inv = await api("inventory");
    const cpu = inv.cpu || {}, mem = inv.memory || {}, os = inv.os || {};
    const facts = [
      ["host", inv.host], ["os", os.pretty_name || os.name || ""], ["booted", os.boot_time ? clock(os.boot_time) : ""],
      ["cpu", [cpu.model, cpu.threads ? cpu.threads + " threads" : ""].filter(Boolean).join(", ")],
      ["memory", mem.total_bytes ? human(mem.total_bytes, "By") : ""],
      ["disks", (inv.disks || []).map((d) => d.name + (d.size_bytes ? " " + human(d.size_bytes, "By") : "")).join(", ")],
      ["network", (inv.network_interfaces || []).map((n) => n.name).join(", ")],
      ["agent", inv.agent ? inv.agent.version : ""],
    ].filter(([, v]) => v);
    $("#inventory").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    $("#inventory-json").textContent = JSON.stringify(inv, null, 2);
  } catch (err) { $("#inventory").textContent = err.message; }
}

// -- the live stream ------------------------------------------------------------------------

function follow() {
  const url = API + "events" + (token() ? "?access_token=" + encodeURIComponent(token()) : "");
  const source = new EventSource(url);
  const live = $("#live");
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  source.addEventListener("tick", (event) => {
    const s = JSON.parse(event.data);
    for (const [key, values] of Object.entries(s.charts)) {
      const chart = charts.get(key);
      if (!chart) continue;
      for (const [label, v] of Object.entries(values)) addPoint(chart, label, s.timestamp, v);
      draw(chart);
    }
    renderTop(s.top);
    document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
  });
  // Alerts now; the history once more a moment later (its writer batches a tick's changes).
  source.addEventListener("alert", () => { refreshAlerts(); setTimeout(refreshHistory, 3000); });
  source.addEventListener("dropped", () => source.close() || setTimeout(follow, 1000));
}

function tokenDialog() {
  const dialog = $("#token-dialog");
  $("#token-input").value = token();
  dialog.onclose = () => {
    if (dialog.returnValue === "save") { sessionStorage.setItem("sysops.token", $("#token-input").value.trim()); location.reload(); }
  };
  dialog.showModal();
}

async function main() {
  $("#token-button").onclick = tokenDialog;
  window.addEventListener("resize", redrawAll);
  await Promise.all([refreshStatus(), loadCharts(), refreshAlerts(), refreshAnomalies(), refreshInventory()]);
  try { renderTop((await api("summary")).top); } catch (err) { /* the next tick fills it */ }
  follow();
  setInterval(refreshStatus, 10000);
  setInterval(refreshAnomalies, 30000);
  setInterval(refreshHistory, 30000);
  setInterval(redrawAll, 10000); // the time axis moves even when no tick arrives
  document.body.dataset.ready = "true";
}

main();
