// epochal node explorer: plain JavaScript, no build step, no CDN. Every value shown comes from
// the JSON API of the same server; data is inserted as text (never as HTML).
"use strict";

const COMPONENTS = [
  ["rep_availability", "A", "availability (weighted mean uptime)"],
  ["rep_jobs", "J", "jobs ((succeeded+1)/(succeeded+failed+2))"],
  ["rep_hardware", "H", "hardware (hw_ratio when verified)"],
  ["rep_tenure", "T", "tenure (hours registered / 720, at most 1)"],
  ["rep_penalty", "P", "penalty (0.5 ^ recent slashes)"],
];
const state = { sort: "-reputation", cursors: [null], page: 0 };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number" && digits !== undefined) return v.toFixed(digits);
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(4);
  if (typeof v === "number") return v.toLocaleString("en-US");
  return String(v);
}
// a number cell: the rounded text for people, the exact JSON value in data-value
function num(v, field, digits) {
  const td = el("td", { text: fmt(v, digits) });
  if (field) td.dataset.field = field;
  td.dataset.value = v === null || v === undefined ? "" : String(v);
  return td;
}
async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : `${r.status} ${r.statusText}`);
  return body;
}

// ---------------------------------------------------------------- the list
function query() {
  const f = new FormData(document.getElementById("filters"));
  const p = new URLSearchParams();
  for (const [k, v] of f.entries()) if (String(v).trim() !== "") p.set(k, String(v).trim());
  p.set("sort", state.sort);
  const c = state.cursors[state.page];
  if (c) p.set("cursor", c);
  return p;
}
async function loadNodes() {
  document.body.dataset.loaded = "loading";
  const tbody = document.querySelector("#nodes tbody");
  let page;
  try {
    page = await getJSON("/nodes?" + query().toString());
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "16", class: "bad", text: e.message })));
    document.body.dataset.loaded = "nodes-error";
    return;
  }
  tbody.replaceChildren(...page.nodes.map(rowOf));
  document.getElementById("matching").textContent =
    `${page.matching.toLocaleString("en-US")} matching nodes · page ${state.page + 1} · as of epoch ${fmt(page.as_of_epoch)}`;
  state.cursors[state.page + 1] = page.next_cursor;
  document.getElementById("next").disabled = !page.next_cursor;
  document.getElementById("first").disabled = state.page === 0;
  document.querySelectorAll("#nodes th[data-sort]").forEach(th => {
    const key = state.sort.replace(/^-/, "");
    th.classList.toggle("sorted", th.dataset.sort === key);
    th.classList.toggle("asc", th.dataset.sort === key && !state.sort.startsWith("-"));
  });
  document.body.dataset.loaded = "nodes";
}
function rowOf(n) {
  const link = el("a", { href: "#node=" + encodeURIComponent(n.node_id), text: n.node_id });
  const tr = el("tr", { "data-node": n.node_id },
    el("td", {}, link), el("td", { text: n.gpu_model_key || n.gpu_model_claimed || "–" }),
    el("td", { text: n.gpu_class || "–" }), el("td", { text: n.region || "–" }),
    num(n.reputation, "reputation"));
  for (const [k] of COMPONENTS) tr.append(num(n.components[k], k, 3));
  tr.append(num(n.up_slots, "up_slots"), num(n.streak_slots, "streak_slots"),
    el("td", { text: n.hw_verdict }), el("td", { text: n.eligible ? "yes" : (n.ineligible_reason || "no") }),
    num(n.reward_base_units, "reward_base_units"),
    el("td", {}, n.live ? el("span", {}, `${n.live.up_slots} up · epoch ${n.live.reward_epoch} `,
      el("span", { class: "badge", text: "provisional" })) : "–"));
  return tr;
}

// ---------------------------------------------------------------- one node
async function loadNode(id) {
  document.body.dataset.loaded = "loading";
  document.getElementById("list-view").hidden = true;
  const view = document.getElementById("node-view");
  view.hidden = false;
  document.getElementById("node-title").textContent = id;
  let d;
  try {
    d = await getJSON("/nodes/" + encodeURIComponent(id) + "?epochs=48");
  } catch (e) {
    document.getElementById("node-registry").textContent = e.message;
    document.body.dataset.loaded = "node-error";
    return;
  }
  const c = d.current, reg = d.registry;
  document.getElementById("node-registry").textContent = reg
    ? `${reg.gpu_count || "?"} × ${reg.gpu_model_claimed || "?"} (${reg.gpu_model_key || "unknown model"}, ${reg.gpu_class || "?"}) · ` +
      `region ${reg.region || "–"} · wallet ${reg.wallet || "–"} · stake ${fmt(reg.stake_base_units)} · registered ${reg.registered_at || "–"}`
    : "not registered";
  document.getElementById("node-epoch").textContent = `(epoch ${c.reward_epoch})`;
  const body = document.querySelector("#breakdown tbody");
  body.replaceChildren(...COMPONENTS.map(([k, short, label]) => {
    const w = c.weights[k];
    const v = c.components[k];
    const contrib = (w === undefined || v === null) ? null : w * v;
    return el("tr", { "data-component": k }, el("td", { text: `${short}: ${label}` }), num(v, k, 6),
      el("td", { text: w === undefined ? "multiplies" : String(w) }), num(contrib, null, 6));
  }));
  const rep = document.getElementById("reputation");
  rep.textContent = fmt(c.reputation);
  rep.dataset.value = c.reputation === null ? "" : String(c.reputation);
  document.getElementById("ruleset").textContent = `ruleset ${c.ruleset_version || "?"}`;
  document.getElementById("paid").textContent = c.reward_base_units > 0
    ? `paid ${fmt(c.reward_base_units)} base units in epoch ${c.reward_epoch}`
    : `not paid in epoch ${c.reward_epoch}: ${c.why_not_paid}`;

  const open = document.getElementById("open-epochs");
  open.replaceChildren(...(d.open_epochs.length ? d.open_epochs.map(o => el("div", { class: "open-epoch" },
    `epoch ${o.reward_epoch}: ${o.up_slots} up slots so far, streak ${o.streak_slots}, hardware ${o.hw_verdict || "–"}, ` +
    `last ping ${o.last_ping_at || "–"} `, el("span", { class: "badge", text: "provisional" }))) : ["no live data"]));

  document.getElementById("strips").replaceChildren(...d.epochs.map(e => {
    const cells = el("span", { class: "cells" });
    for (const ch of e.up_slot_map) cells.append(el("span", { class: ch === "1" ? "up" : "" }));
    return el("div", { class: "strip", "data-epoch": String(e.reward_epoch) },
      el("span", { text: `epoch ${e.reward_epoch}`, style: "width:80px" }), cells, el("span", { text: `${e.up_slots}/60` }));
  }));
  document.getElementById("reward-chart").replaceChildren(chart(d.epochs, "reward_base_units", "#2563eb"));
  document.getElementById("rep-chart").replaceChildren(chart(d.epochs, "reputation", "#7c3aed"));
  document.querySelector("#epochs tbody").replaceChildren(...d.epochs.slice().reverse().map(e => el("tr", {},
    el("td", { text: e.reward_epoch }), num(e.up_slots), num(e.streak_slots), num(e.reputation),
    el("td", { text: e.hw_verdict }), num(e.weight), num(e.reward_base_units),
    el("td", { text: e.why_not_paid || "" }))));
  document.querySelector("#hardware tbody").replaceChildren(...d.hardware.map(h => el("tr", {},
    el("td", { text: h.from_epoch === h.to_epoch ? h.from_epoch : `${h.from_epoch}–${h.to_epoch}` }),
    el("td", { text: h.hw_verdict || "–" }), num(h.hw_ratio, null, 3), el("td", { text: h.benchmark_event_id || "–" }))));
  const sl = document.getElementById("slashes");
  sl.replaceChildren(...(d.slashes.length ? d.slashes.map(s => el("details", {},
    el("summary", { text: `${s.rule} · ${fmt(s.amount_base_units)} base units · ${s.status} · decided ${s.decided_at || "–"}` }),
    el("div", { text: s.detail || "" }),
    ...s.evidence.map(ev => el("div", {}, el("b", { text: `${ev.event_type || "event"} ${ev.event_id}` }),
      ` ${ev.occurred_at || ""}${ev.found ? "" : " (not in the published inputs)"}`,
      el("pre", { text: ev.payload === null || ev.payload === undefined ? "" : JSON.stringify(ev.payload, null, 1) }))))) : ["none"]));
  document.body.dataset.loaded = "node";
}
// a small bar chart as inline SVG
function chart(rows, field, colour) {
  const ns = "http://www.w3.org/2000/svg";
  const w = Math.max(300, rows.length * 14 + 60), h = 120;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  const max = Math.max(1, ...rows.map(r => r[field] || 0));
  rows.forEach((r, i) => {
    const v = r[field] || 0, bh = Math.round((h - 30) * v / max);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", 50 + i * 14); rect.setAttribute("y", h - 20 - bh);
    rect.setAttribute("width", 10); rect.setAttribute("height", bh); rect.setAttribute("fill", colour);
    const t = document.createElementNS(ns, "title");
    t.textContent = `epoch ${r.reward_epoch}: ${fmt(r[field])}`;
    rect.append(t); svg.append(rect);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 0); label.setAttribute("y", 12); label.textContent = `max ${fmt(max)}`;
  svg.append(label);
  return svg;
}

// ---------------------------------------------------------------- routing
function route() {
  const m = location.hash.match(/^#node=(.+)$/);
  if (m) { loadNode(decodeURIComponent(m[1])); return; }
  document.getElementById("node-view").hidden = true;
  document.getElementById("list-view").hidden = false;
  loadNodes();
}
async function loadStatus() {
  try {
    const h = await getJSON("/health");
    document.getElementById("status").textContent = h.published_epochs
      ? `${h.nodes.toLocaleString("en-US")} nodes · epochs ${h.first_epoch}–${h.latest_epoch}` +
        (h.live ? ` · live ${h.live.connected ? "connected" : "offline"}` : "")
      : "no published epochs yet";
  } catch (e) { document.getElementById("status").textContent = e.message; }
}
document.getElementById("filters").addEventListener("submit", ev => {
  ev.preventDefault(); state.cursors = [null]; state.page = 0;
  if (location.hash) location.hash = ""; else loadNodes();
});
document.getElementById("next").addEventListener("click", () => { state.page += 1; loadNodes(); });
document.getElementById("first").addEventListener("click", () => { state.page = 0; loadNodes(); });
document.querySelectorAll("#nodes th[data-sort]").forEach(th => th.addEventListener("click", () => {
  const key = th.dataset.sort;
  state.sort = state.sort === "-" + key ? key : "-" + key;
  state.cursors = [null]; state.page = 0; loadNodes();
}));
window.addEventListener("hashchange", route);
loadStatus();
route();
