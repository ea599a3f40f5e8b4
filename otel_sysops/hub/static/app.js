"use strict";
// The hub's web UI: plain JavaScript, no build step, no external resources.
const $ = (sel) => document.querySelector(sel);
const view = $("#view");
const keyInput = $("#key");
keyInput.value = localStorage.getItem("hubKey") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("hubKey", keyInput.value); route(); });

function headers() {
  const key = keyInput.value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.status);
  return body;
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}
const pct = (v) => (v === undefined || v === null ? "–" : (v * 100).toFixed(0) + " %");
const ago = (s) => (s < 90 ? s.toFixed(0) + " s" : s < 5400 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h");
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
const hostLink = (h) => el("a", { href: "#/host/" + encodeURIComponent(h) }, h);

let fleetState = { sort: "status", order: "desc", q: "", status: "" };
let refreshTimer = null;

async function fleet() {
  const params = new URLSearchParams({ sort: fleetState.sort, order: fleetState.order });
  if (fleetState.q) params.set("q", fleetState.q);
  if (fleetState.status) params.set("status", fleetState.status);
  const data = await api("/api/v1/hosts?" + params);
  $("#summary").textContent = `${data.total} host(s), ${data.down} down`;
  const columns = [
    ["host", "Host"], ["status", "Status"], ["age_s", "Last heartbeat"], ["cpu", "CPU"],
    ["memory", "Memory"], ["disk", "Disk"], ["alerts", "Alerts (crit / warn / info)"], ["version", "Version"],
  ];
  const head = el("tr", {}, ...columns.map(([key, label]) => el("th", {
    "data-sort": key,
    onclick: () => {
      fleetState.order = fleetState.sort === key && fleetState.order === "asc" ? "desc" : "asc";
      fleetState.sort = key; fleet();
    },
  }, label + (fleetState.sort === key ? (fleetState.order === "asc" ? " ▲" : " ▼") : ""))));
  const rows = data.hosts.map((h) => el("tr", { "data-host": h.host },
    el("td", {}, hostLink(h.host)),
    el("td", {}, el("span", { class: h.status }, h.status)),
    el("td", { class: "num" }, ago(h.age_s)),
    el("td", { class: "num" }, pct(h.summary.cpu)),
    el("td", { class: "num" }, pct(h.summary.memory)),
    el("td", { class: "num" }, pct(h.summary.disk)),
    el("td", { class: "num" },
      el("span", { class: "sev-critical" }, String(h.alerts.critical + h.alerts.emergency)), " / ",
      el("span", { class: "sev-warning" }, String(h.alerts.warning)), " / ",
      el("span", { class: "sev-info" }, String(h.alerts.info))),
    el("td", {}, h.version || "–")));
  const q = el("input", { placeholder: "filter hosts", value: fleetState.q, id: "filter",
    onchange: (e) => { fleetState.q = e.target.value; fleet(); } });
  const status = el("select", { onchange: (e) => { fleetState.status = e.target.value; fleet(); } },
    ...["", "up", "down"].map((s) => { const o = el("option", { value: s }, s || "any status"); if (s === fleetState.status) o.selected = true; return o; }));
  const active = await api("/api/v1/alerts");
  view.replaceChildren(
    el("div", { class: "filters" }, q, status),
    el("table", { id: "fleet" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("h2", {}, `Alerts firing (${active.total})`),
    alertTable(active.alerts.slice(0, 200), "active"));
}

function alertTable(alerts, id) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, ...["Started", "Ended", "Host", "Severity", "Rule", "State", "Source", "Message"].map((t) => el("th", {}, t)))),
    el("tbody", {}, ...alerts.map((a) => el("tr", { "data-rule": a.rule },
      el("td", {}, when(a.starts_at)), el("td", {}, when(a.ends_at)), el("td", {}, hostLink(a.host)),
      el("td", { class: "sev-" + a.severity }, a.severity), el("td", {}, a.rule), el("td", {}, a.state),
      el("td", {}, a.source), el("td", {}, a.message)))));
}

async function history() {
  const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
    el("input", { name: "host", placeholder: "host" }), el("input", { name: "rule", placeholder: "rule" }),
    el("select", { name: "severity" }, ...["", "info", "warning", "critical", "emergency"].map((s) => el("option", { value: s }, s || "any severity"))),
    el("select", { name: "state" }, ...["", "firing", "resolved"].map((s) => el("option", { value: s }, s || "any state"))),
    el("button", {}, "Filter"));
  const out = el("div");
  view.replaceChildren(el("h2", {}, "Alert history"), form, out);
  async function load() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    params.set("limit", "200");
    const data = await api("/api/v1/alerts/history?" + params);
    out.replaceChildren(el("p", { class: "muted" }, `${data.total} alert(s)`), alertTable(data.alerts, "history"));
  }
  await load();
}

function chart(title, series) {
  const w = 420, h = 140, svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  const points = series.flatMap((s) => s.points);
  const box = el("div", { class: "chart" }, el("div", {}, title));
  if (!points.length) { box.append(el("div", { class: "muted" }, "no data")); return box; }
  const t0 = Math.min(...points.map((p) => p[0])), t1 = Math.max(...points.map((p) => p[0]));
  const v1 = Math.max(...points.map((p) => p[1]), 1e-9);
  for (const s of series.slice(0, 8)) {
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2e6da4");
    line.setAttribute("points", s.points.map((p) => `${((p[0] - t0) / (t1 - t0 || 1)) * (w - 10) + 5},${h - 5 - (p[1] / v1) * (h - 10)}`).join(" "));
    svg.append(line);
  }
  box.append(svg, el("div", { class: "muted" }, `max ${v1.toPrecision(3)}`));
  return box;
}

async function host(name) {
  const [detail, status] = await Promise.all([api("/api/v1/hosts/" + encodeURIComponent(name)), api("/api/v1/status")]);
  const parts = [
    el("h2", {}, name, " ", el("span", { class: detail.status }, detail.status)),
    el("p", {}, `last heartbeat ${ago(detail.age_s)} ago · agent ${detail.version || "?"} · every ${detail.interval} s `,
      detail.grafana_url ? el("a", { href: detail.grafana_url, id: "grafana" }, "Grafana") : ""),
    el("h2", {}, "Active alerts"), alertTable(detail.active_alerts, "host-alerts"),
  ];
  const charts = el("div", { class: "charts", id: "charts" });
  parts.push(el("h2", {}, `Charts (${status.ui.charts})`), charts);
  const changes = el("div"), inventory = el("pre", { id: "inventory" }, "…");
  parts.push(el("h2", {}, "Inventory changes"), changes, el("h2", {}, "Inventory"), inventory);
  view.replaceChildren(...parts);
  for (const metric of status.ui.chart_metrics) {
    api(`/api/v1/hosts/${encodeURIComponent(name)}/series?metric=${encodeURIComponent(metric)}`)
      .then((d) => charts.append(chart(metric, d.series)))
      .catch((e) => charts.append(el("div", { class: "chart muted" }, `${metric}: ${e.message}`)));
  }
  api(`/api/v1/hosts/${encodeURIComponent(name)}/inventory/changes`).then((d) => changes.replaceChildren(
    d.changes.length ? el("ul", {}, ...d.changes.map((c) => el("li", {}, `${when(c.at)}: ${c.changed.join(", ") || "first inventory"}`))) : el("p", { class: "muted" }, "none")));
  api(`/api/v1/hosts/${encodeURIComponent(name)}/inventory`).then((d) => { inventory.textContent = JSON.stringify(d.inventory, null, 2); })
    .catch((e) => { inventory.textContent = e.message; });
}

async function route() {
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/host/")) await host(decodeURIComponent(hash.slice(7)));
    else if (hash === "#/alerts") await history();
    else await fleet();
  } catch (e) {
    view.replaceChildren(el("p", { class: "sev-critical" }, "Error: " + e.message));
  }
}

// Live updates: refresh the fleet view on host and alert events (at most every 2 s).
function live() {
  const key = keyInput.value.trim();
  const source = new EventSource("/api/v1/events" + (key ? "?token=" + encodeURIComponent(key) : ""));
  const refresh = () => {
    if (refreshTimer || !(location.hash === "" || location.hash === "#/")) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; fleet().catch(() => {}); }, 2000);
  };
  for (const type of ["host", "alert", "fleet"]) source.addEventListener(type, refresh);
}
window.addEventListener("hashchange", route);
route();
// ?live=0 turns the event stream off (for printing, screenshots, headless captures).
if (new URLSearchParams(location.search).get("live") !== "0") live();
