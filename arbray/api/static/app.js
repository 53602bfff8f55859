/* arbray dashboard: vanilla JS over /api/v1. The token lives in sessionStorage and travels only as a
   bearer header. DOM is built with createElement/textContent (no HTML from data), charts are inline SVG. */
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "arbray.token";
const state = { role: null, name: null, timers: [], symbols: [], schema: null };

// ------------------------------------------------------------------ helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = (id) => document.getElementById(id);
const fmt = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–"
  : Number(v).toLocaleString(undefined, { minimumFractionDigits: d, maximumFractionDigits: d }));
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
const signed = (v, d = 2) => (v === null || v === undefined ? "–" : `${v > 0 ? "+" : ""}${fmt(v, d)}`);
const cls = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : "");
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
const isAdmin = () => state.role === "admin";

function toast(msg, error = false) {
  const t = $("toast");
  t.textContent = msg;
  t.className = `toast${error ? " error" : ""}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 4000);
}

class ApiError extends Error {
  constructor(status, body) {
    super(typeof body?.detail === "string" ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (res.status === 401) { logout("Your session ended: sign in again."); throw new ApiError(401, data); }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function every(ms, fn) { fn(); state.timers.push(setInterval(fn, ms)); }
function clearTimers() { state.timers.forEach(clearInterval); state.timers = []; }

// ------------------------------------------------------------------ charts
function lineChart(series, { height = 220, yLabel = "", colors = ["#6ea8ff", "#a58bff"], area = true } = {}) {
  const W = 900, H = height, P = { l: 56, r: 56, t: 12, b: 24 };
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": yLabel });
  const all = series.flatMap((ser) => ser.points);
  if (all.length < 2) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "not enough data yet"));
    return svg;
  }
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1;
  const X = (x) => P.l + ((x - x0) / (x1 - x0 || 1)) * (W - P.l - P.r);
  series.forEach((ser, i) => {
    const ys = ser.points.map((p) => p[1]).filter((v) => v !== null && v !== undefined);
    if (!ys.length) return;
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    const Y = (y) => H - P.b - ((y - y0) / (y1 - y0)) * (H - P.t - P.b);
    if (i === 0) {
      for (let k = 0; k <= 4; k++) {
        const v = y0 + ((y1 - y0) * k) / 4;
        svg.append(s("line", { class: "grid-line", x1: P.l, x2: W - P.r, y1: Y(v), y2: Y(v) }));
        svg.append(s("text", { x: P.l - 6, y: Y(v) + 4, "text-anchor": "end" }, fmt(v, Math.abs(v) < 10 ? 2 : 0)));
      }
    } else {
      svg.append(s("text", { x: W - P.r + 6, y: Y(y1) + 10 }, fmt(y1, Math.abs(y1) < 10 ? 2 : 0)));
      svg.append(s("text", { x: W - P.r + 6, y: Y(y0) }, fmt(y0, Math.abs(y0) < 10 ? 2 : 0)));
    }
    const pts = ser.points.filter((p) => p[1] !== null && p[1] !== undefined).map((p) => `${X(p[0])},${Y(p[1])}`);
    const color = ser.color || colors[i % colors.length];
    if (area && i === 0 && pts.length > 1) {
      const first = pts[0].split(",")[0], last = pts[pts.length - 1].split(",")[0];
      svg.append(s("polygon", { points: `${first},${H - P.b} ${pts.join(" ")} ${last},${H - P.b}`, fill: color,
        "fill-opacity": "0.10" }));
    }
    svg.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": "2",
      "vector-effect": "non-scaling-stroke" }));
  });
  svg.append(s("text", { x: P.l, y: H - 6 }, new Date(x0).toLocaleString()));
  svg.append(s("text", { x: W - P.r, y: H - 6, "text-anchor": "end" }, new Date(x1).toLocaleString()));
  return svg;
}

function legend(items) {
  return h("div", { class: "chips" }, items.map(([label, color]) => {
    const dot = h("span", { text: "● " });
    dot.style.color = color;
    return h("span", { class: "chip" }, dot, label);
  }));
}

// ------------------------------------------------------------------ auth
function showLogin(message) {
  $("shell").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message || "";
  $("token").focus();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimers();
  state.role = null;
  showLogin(message);
}

async function login(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    const me = await api("/system/whoami");
    state.role = me.role;
    state.name = me.name;
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.status === 429 ? "Too many failed attempts: wait a minute." : "That token was not accepted.");
    return;
  }
  $("login").classList.add("hidden");
  $("shell").classList.remove("hidden");
  $("who").textContent = `${state.name} · ${state.role}`;
  state.symbols = await api("/symbols").catch(() => []);
  route();
}

// ------------------------------------------------------------------ router
const views = { plaza: viewPlaza, strategy: viewStrategy, market: viewMarket, risk: viewRisk, backtests: viewBacktests,
  system: viewSystem };

function route() {
  clearTimers();
  const [, name = "plaza", arg] = (location.hash || "#/plaza").split("/");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  const root = $("view");
  root.replaceChildren();
  (views[name] || viewPlaza)(root, arg ? decodeURIComponent(arg) : undefined);
  every(10_000, refreshRiskPill);
}

async function refreshRiskPill() {
  const pill = $("risk-pill");
  try {
    const r = await api("/risk");
    pill.textContent = `risk ${r.state}${r.source === "journal" ? " (engine off)" : ""}`;
    pill.className = `pill ${r.state}`;
  } catch { pill.textContent = "risk ?"; pill.className = "pill UNKNOWN"; }
}

// ------------------------------------------------------------------ plaza
function viewPlaza(root) {
  const filters = { status: "", symbol: "", source: "live", sort: "net_usdt_desc" };
  const summary = h("div", { class: "summary" });
  const grid = h("div", { class: "grid", id: "cards" });
  const select = (key, options) => h("select", { "aria-label": key, onchange: (e) => { filters[key] = e.target.value; load(); } },
    options.map(([v, label]) => h("option", { value: v, selected: filters[key] === v }, label)));
  root.append(
    h("div", { class: "toolbar" }, h("h1", { text: "Strategy plaza" }),
      select("source", [["live", "Live strategies"], ["backtest", "Backtests"], ["", "All"]]),
      select("status", [["", "Any status"], ["running", "Running"], ["paused", "Paused"], ["deprecated", "Deprecated"]]),
      select("symbol", [["", "All symbols"], ...state.symbols.map((x) => [x.symbol, x.symbol])]),
      select("sort", [["net_usdt_desc", "Net USDT ↓"], ["net_usdt_asc", "Net USDT ↑"], ["pnl24_desc", "24 h PnL ↓"],
        ["recent", "Recently active"]]),
      h("div", { class: "spacer" }),
      isAdmin() ? h("button", { class: "btn primary", id: "new-strategy", onclick: () => strategyForm(null, load) },
        "+ New strategy") : null),
    summary, grid);

  async function load() {
    const q = new URLSearchParams(Object.entries(filters).filter(([k, v]) => v && k !== "sort"));
    let cards;
    try { cards = await api(`/strategies?${q}`); } catch (e) { grid.replaceChildren(h("div", { class: "empty", text: e.message })); return; }
    const sorters = {
      net_usdt_desc: (a, b) => b.net_usdt - a.net_usdt, net_usdt_asc: (a, b) => a.net_usdt - b.net_usdt,
      pnl24_desc: (a, b) => b.pnl_24h.net_pnl - a.pnl_24h.net_pnl,
      recent: (a, b) => (b.last_run_ms || b.status_changed_ms) - (a.last_run_ms || a.status_changed_ms),
    };
    cards.sort(sorters[filters.sort]);
    const tot = (f) => cards.reduce((acc, c) => acc + f(c), 0);
    const trades = tot((c) => c.trades), wins = tot((c) => c.stats.wins);
    summary.replaceChildren(
      kpi("Strategies", `${cards.filter((c) => c.status === "running").length} running / ${cards.length}`),
      kpi("Net USDT", signed(tot((c) => c.net_usdt)), cls(tot((c) => c.net_usdt))),
      kpi("Net R", signed(tot((c) => c.net_r)), cls(tot((c) => c.net_r))),
      kpi("Win rate", trades ? pct(wins / trades) : "–"),
      kpi("Trades", trades), kpi("Open positions", tot((c) => c.open_positions)),
      kpi("24 h PnL", signed(tot((c) => c.pnl_24h.net_pnl)), cls(tot((c) => c.pnl_24h.net_pnl))));
    grid.replaceChildren(...(cards.length ? cards.map((c) => card(c, load))
      : [h("div", { class: "empty", text: "No strategies here yet." })]));
  }
  every(30_000, load);
}

function kpi(label, value, klass = "") {
  return h("div", { class: "kpi" }, h("div", { class: "label", text: label }),
    h("div", { class: `value num ${klass}`, text: String(value) }));
}

function stat(label, value, klass = "") {
  return h("div", { class: "stat" }, h("div", { class: "label", text: label }),
    h("div", { class: `value num ${klass}`, text: String(value) }));
}

function winClass(wr) { return wr === null ? "" : wr >= 0.5 ? "pos" : wr >= 0.45 ? "warn" : "neg"; }

function card(c, reload) {
  const ratio = c.initial_balance ? c.current_balance / c.initial_balance : 1;
  const fill = h("div", { class: ratio < 1 ? "neg" : "" });
  fill.style.width = `${Math.max(2, Math.min(100, ratio * 50))}%`;
  const open = () => { location.hash = `#/strategy/${encodeURIComponent(c.slug)}`; };
  const score = c.latest_score;
  return h("article", { class: "card", "data-slug": c.slug },
    h("div", { class: "card-head" },
      h("div", {}, h("div", { class: "card-title", onclick: open, text: c.display_name }),
        h("div", { class: "card-sub", text: `${c.slug} · ${c.kind}${c.source === "backtest" ? " · backtest" : ""}` })),
      h("span", { class: `badge ${c.status}`, text: c.status })),
    h("div", { class: "chips" }, c.symbols.map((x) => h("span", { class: "chip", text: x })),
      c.direction ? h("span", { class: "chip", text: c.direction }) : null),
    h("div", { class: "balance" },
      h("div", {}, h("div", { class: "big num", text: fmt(c.current_balance) }),
        h("div", { class: "muted", text: `of ${fmt(c.initial_balance, 0)} USDT` })),
      h("div", { class: `num ${cls(c.net_usdt)}`, text: `${signed(c.net_usdt)} USDT` })),
    h("div", { class: "bar" }, fill),
    h("div", { class: "stats" },
      stat("Net R", signed(c.net_r), cls(c.net_r)), stat("Win rate", pct(c.win_rate), winClass(c.win_rate)),
      stat("Trades", c.trades), stat("Open", c.open_positions),
      stat("24 h PnL", signed(c.pnl_24h.net_pnl), cls(c.pnl_24h.net_pnl)),
      stat("Score", score ? `${fmt(score.total, 1)} ${score.side || ""}` : "–", score && score.is_entry ? "pos" : "")),
    h("div", { class: "actions" },
      h("button", { class: "btn small", onclick: open }, "Details"),
      ...(isAdmin() && c.source === "live" ? lifecycleButtons(c, reload) : [])));
}

function lifecycleButtons(c, reload) {
  const act = (action, body) => async () => {
    try { await api(`/strategies/${encodeURIComponent(c.slug)}/${action}`, { method: "POST", body });
      toast(`${c.display_name}: ${action} done`); reload(); } catch (e) { toast(e.message, true); }
  };
  const out = [];
  if (c.status === "running") out.push(h("button", { class: "btn small", "data-action": "pause", onclick: act("pause") }, "Pause"));
  if (c.status === "paused") out.push(h("button", { class: "btn small", "data-action": "resume", onclick: act("resume") }, "Resume"));
  if (c.status === "deprecated") out.push(h("button", { class: "btn small", "data-action": "restore", onclick: act("restore") }, "Restore"));
  else {
    out.push(h("button", { class: "btn small", "data-action": "edit", onclick: () => strategyForm(c.slug, reload) }, "Edit"));
    out.push(h("button", { class: "btn small", "data-action": "add-balance", onclick: () => addBalance(c, reload) }, "Add balance"));
    out.push(h("button", { class: "btn small danger", "data-action": "deprecate", onclick: () => confirmDialog(
      `Deprecate ${c.display_name}?`, "It stops trading; its history and balance are kept and it can be restored.",
      "Deprecate", act("deprecate", { confirm: true })) }, "Deprecate"));
  }
  return out;
}

// ------------------------------------------------------------------ modals
function openModal(...children) {
  const card = $("modal-card");
  card.className = "modal-card";
  card.replaceChildren(...children);
  $("modal").classList.remove("hidden");
  return card;
}
function closeModal() { $("modal").classList.add("hidden"); $("modal-card").replaceChildren(); }

function confirmDialog(title, text, label, onYes) {
  openModal(h("h2", { text: title }), h("p", { class: "muted", text }),
    h("div", { class: "modal-actions" }, h("button", { class: "btn", onclick: closeModal }, "Cancel"),
      h("button", { class: "btn danger", id: "confirm-yes", onclick: async () => { closeModal(); await onYes(); } }, label)));
  $("modal-card").classList.add("narrow");
}

function addBalance(c, reload) {
  const input = h("input", { type: "number", min: "100", step: "100", value: "1000", id: "amount" });
  const preview = h("p", { class: "muted" });
  const upd = () => { const v = Number(input.value) || 0;
    preview.textContent = `Balance ${fmt(c.current_balance)} → ${fmt(c.current_balance + v)} USDT; initial ${fmt(c.initial_balance, 0)} → ${fmt(c.initial_balance + v, 0)}`; };
  input.addEventListener("input", upd);
  upd();
  openModal(h("h2", { text: `Add balance to ${c.display_name}` }), h("div", { class: "field" }, h("label", { text: "Amount (USDT)" }), input),
    preview, h("div", { class: "modal-actions" }, h("button", { class: "btn", onclick: closeModal }, "Cancel"),
      h("button", { class: "btn primary", onclick: async () => {
        const amount = Number(input.value);
        if (!(amount >= 100)) { toast("at least 100 USDT", true); return; }
        try { await api(`/strategies/${encodeURIComponent(c.slug)}/add-balance`, { method: "POST",
          body: { amount, ref: `ui-${Date.now()}` } }); closeModal(); toast("balance added"); reload(); }
        catch (e) { toast(e.message, true); }
      } }, "Add")));
  $("modal-card").classList.add("narrow");
}

// ------------------------------------------------------------------ create / edit form (factory kind)
const FORM_FIELDS = [
  ["Identity", [["display_name", "Display name", "text"], ["strategy_id", "Name (unique, A-Z 0-9 _ . -)", "text", "create"],
    ["symbol", "Symbol", "symbol", "create"], ["direction", "Direction", "enum"], ["initial_balance", "Initial balance (USDT)", "number", "create"],
    ["description", "Description", "text"]]],
  ["CVD windows", [["cvd_fast_window", "Fast window", "enum"], ["cvd_slow_window", "Slow window", "enum"]]],
  ["Layer weights (must total 100)", [["weight_direction", "Direction", "number"], ["weight_env", "Environment", "number"],
    ["weight_aux", "Auxiliary", "number"], ["weight_momentum", "Momentum", "number"]]],
  ["Thresholds", [["entry_score", "Entry score", "number"], ["flip_threshold", "Flip threshold", "number"]]],
  ["Gates", [["gate_vol_enabled", "Volatility gate", "bool"], ["vol_atr_pct_min", "Min ATR/price", "number"],
    ["gate_cvd_enabled", "CVD resonance gate", "bool"], ["gate_whale_enabled", "Whale gate", "bool"],
    ["whale_mode", "Whale mode", "enum"], ["whale_usd_threshold", "Whale USD", "number"], ["whale_flow_pct", "Whale flow", "number"],
    ["gate_obi_enabled", "OBI gate", "bool"], ["obi_threshold", "OBI threshold", "number"],
    ["gate_spot_perp_enabled", "Spot–perp gate", "bool"], ["spot_perp_threshold", "Spot–perp threshold", "number"]]],
  ["Exits", [["sl_atr_multiplier", "Stop (ATR ×)", "number"], ["tp1_ratio", "TP1 (R)", "number"], ["tp2_ratio", "TP2 (R)", "number"],
    ["timeout_minutes", "Timeout (min)", "number"]]],
];
const TOP_LEVEL = new Set(["display_name", "initial_balance", "description"]);
const WEIGHTS = ["weight_direction", "weight_env", "weight_aux", "weight_momentum"];

async function strategyForm(slug, reload) {
  if (!state.schema) state.schema = (await api("/kinds/factory")).config_schema;
  const props = state.schema.properties;
  const existing = slug ? await api(`/strategies/${encodeURIComponent(slug)}`) : null;
  const values = existing ? { ...existing.config, display_name: existing.display_name, description: existing.description || "" }
    : Object.fromEntries(Object.entries(props).filter(([, p]) => "default" in p).map(([k, p]) => [k, p.default]));
  if (!existing) Object.assign(values, { display_name: "", strategy_id: "", symbol: state.symbols[0]?.symbol || "BTCUSDT",
    initial_balance: 10000, description: "" });
  const inputs = {}, errs = {};
  const sum = h("div", { class: "weights-sum" });
  const save = h("button", { class: "btn primary", id: "save-strategy", type: "submit" }, existing ? "Save changes" : "Create strategy");

  function rangeOf(key) {
    const p = props[key] || {};
    return { min: p.minimum ?? p.exclusiveMinimum, max: p.maximum ?? p.exclusiveMaximum };
  }
  function enumOf(key) {
    const p = props[key] || {};
    return p.enum || (p.anyOf || []).flatMap((x) => x.enum || []) || [];
  }
  function readValue(key) {
    const el = inputs[key];
    if (!el) return undefined;
    if (el.type === "checkbox") return el.checked;
    if (el.type === "number") return el.value === "" ? undefined : Number(el.value);
    return el.value;
  }
  function check() {
    let ok = true;
    for (const [key, el] of Object.entries(inputs)) {
      let msg = "";
      const v = readValue(key);
      if (el.type === "number" && v !== undefined) {
        const { min, max } = key === "initial_balance" ? { min: 1000 } : rangeOf(key);
        if (min !== undefined && v < min) msg = `at least ${min}`;
        if (max !== undefined && v > max) msg = `at most ${max}`;
      }
      if (key === "display_name" && !String(v || "").trim()) msg = "required";
      if (key === "strategy_id" && !/^[A-Za-z0-9_.-]{1,64}$/.test(String(v || ""))) msg = "1–64 of A-Z a-z 0-9 _ . -";
      el.classList.toggle("invalid", !!msg);
      errs[key].textContent = msg;
      if (msg) ok = false;
    }
    const total = WEIGHTS.reduce((a, k) => a + (Number(readValue(k)) || 0), 0);
    sum.textContent = total === 100 ? `Weights total 100 ✓` : `Weights total ${total}: they must total 100`;
    sum.className = `weights-sum ${total === 100 ? "ok" : "bad"}`;
    if (total !== 100) ok = false;
    save.disabled = !ok;
    return ok;
  }
  function applySymbolDefaults(symbol) {
    const row = state.symbols.find((x) => x.symbol === symbol);
    if (!row) return;
    for (const [k, v] of Object.entries(row.gate_defaults)) if (inputs[k]) inputs[k].value = v;
  }

  const form = h("form", { class: "form", id: "strategy-form", novalidate: true });
  for (const [title, fields] of FORM_FIELDS) {
    form.append(h("div", { class: "section-title", text: title }));
    for (const [key, label, type, mode] of fields) {
      if (mode === "create" && existing) continue;
      let el;
      if (type === "enum") el = h("select", { name: key }, enumOf(key).map((o) => h("option", { value: o, selected: values[key] === o }, o)));
      else if (type === "symbol") {
        el = h("select", { name: key }, state.symbols.map((x) => h("option", { value: x.symbol, selected: values[key] === x.symbol }, x.symbol)));
        el.addEventListener("change", () => { applySymbolDefaults(el.value); check(); });
      } else if (type === "bool") el = h("input", { type: "checkbox", name: key, checked: !!values[key] });
      else {
        const { min, max } = rangeOf(key);
        el = h("input", { type, name: key, value: values[key] ?? "", min, max, step: type === "number" ? "any" : null });
      }
      el.id = `f-${key}`;
      el.addEventListener("input", check);
      inputs[key] = el;
      errs[key] = h("div", { class: "err" });
      form.append(h("div", { class: `field${type === "bool" ? " check" : ""}` }, h("label", { for: el.id, text: label }), el, errs[key]));
      if (key === "weight_momentum") form.append(sum);
    }
  }
  if (!existing) applySymbolDefaults(values.symbol);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!check()) return;
    const config = {}, top = {};
    for (const key of Object.keys(inputs)) (TOP_LEVEL.has(key) ? top : config)[key] = readValue(key);
    if (!top.description) delete top.description;
    try {
      let res;
      if (existing) {
        const changed = Object.fromEntries(Object.entries(config).filter(([k, v]) => existing.config[k] !== v));
        res = await api(`/strategies/${encodeURIComponent(slug)}`, { method: "PATCH",
          body: { ...top, ...(Object.keys(changed).length ? { config: changed } : {}) } });
      } else {
        res = await api("/strategies", { method: "POST", body: { ...top, config: { kind: "factory", ...config } } });
      }
      closeModal();
      toast(`${res.strategy.display_name} saved — the engine picks it up within one evaluation cycle`);
      reload();
    } catch (err) {
      if (err.status === 422 && Array.isArray(err.body?.detail)) {
        for (const d of err.body.detail) {
          const key = d.loc[d.loc.length - 1];
          if (errs[key]) { errs[key].textContent = d.msg; inputs[key].classList.add("invalid"); }
          else toast(`${d.loc.join(".")}: ${d.msg}`, true);
        }
        save.disabled = false;
      } else toast(err.message, true);
    }
  });
  openModal(h("h2", { text: existing ? `Edit ${existing.display_name}` : "New strategy (factory)" }),
    existing ? h("p", { class: "muted", text: "Symbol, name and initial balance are fixed; use add-balance to fund it." }) : null,
    form, h("div", { class: "modal-actions" }, h("button", { class: "btn", type: "button", onclick: closeModal }, "Cancel"), save));
  save.addEventListener("click", () => form.requestSubmit());
  check();
}

// ------------------------------------------------------------------ strategy detail
function viewStrategy(root, slug) {
  const head = h("div", { class: "toolbar" });
  const tabsBar = h("div", { class: "tabs" });
  const body = h("div");
  root.append(head, tabsBar, body);
  let tab = "signals", detail = null;
  const tabs = { signals: "Signals", positions: "Positions", trades: "Trades", equity: "Equity", stats: "Stats",
    parameters: "Parameters", history: "History" };
  for (const [k, label] of Object.entries(tabs)) {
    tabsBar.append(h("button", { "data-tab": k, class: k === tab ? "active" : "", onclick: (e) => {
      tab = k;
      for (const b of tabsBar.children) b.classList.toggle("active", b === e.target);
      render();
      loadHead();  // the header's net PnL and status as of now
    } }, label));
  }
  async function load() {
    if (await loadHead()) render();
  }
  async function loadHead() {
    try { detail = await api(`/strategies/${encodeURIComponent(slug)}`); }
    catch (e) { head.replaceChildren(h("div", { class: "empty", text: e.message })); return false; }
    head.replaceChildren(h("h1", { text: detail.display_name }), h("span", { class: `badge ${detail.status}`, text: detail.status }),
      h("span", { class: "chip", text: detail.kind }), ...detail.symbols.map((x) => h("span", { class: "chip", text: x })),
      h("span", { class: `num ${cls(detail.net_usdt)}`, text: `${signed(detail.net_usdt)} USDT · ${signed(detail.net_r)} R` }),
      h("div", { class: "spacer" }),
      ...(isAdmin() && detail.source === "live" ? [...lifecycleButtons(detail, load),
        h("button", { class: "btn small danger", onclick: () => confirmDialog(`Kill ${detail.display_name}?`,
          "Closes its positions by taker now and pauses it.", "Kill", async () => {
            try { await api(`/strategies/${encodeURIComponent(slug)}/kill`, { method: "POST", body: {} }); toast("killed"); load(); }
            catch (e) { toast(e.message, true); } }) }, "Kill")] : []));
    return true;
  }
  async function render() {
    const out = h("div");
    body.replaceChildren(out);
    const d = detail;
    if (!d) return;
    try {
      if (tab === "signals") await renderSignals(out, d);
      if (tab === "positions") {
        const p = await api(`/positions?strategy=${encodeURIComponent(slug)}`);
        out.append(panel(`Open positions (${p.source})`, positionsTable(p.positions)));
      }
      if (tab === "trades") await renderTrades(out, slug);
      if (tab === "equity") {
        const eq = await api(`/strategies/${encodeURIComponent(slug)}/equity`);
        out.append(panel("Equity curve (USDT)", lineChart([{ points: eq.map((p) => [p.ts_ms, p.balance]) }], { height: 280 })));
      }
      if (tab === "stats") {
        const st = await api(`/strategies/${encodeURIComponent(slug)}/stats`);
        out.append(panel("Results", kv({ Trades: st.stats.trades, Wins: st.stats.wins, Losses: st.stats.losses,
          "Win rate": pct(st.stats.win_rate), "Net PnL": signed(st.stats.net_pnl), "Gross PnL": signed(st.stats.gross_pnl),
          Fees: fmt(st.stats.fees), Funding: signed(st.stats.funding), "Profit factor": fmt(st.stats.profit_factor),
          "Total R": signed(st.stats.total_r), "Avg R": signed(st.stats.avg_r), Best: signed(st.stats.best),
          Worst: signed(st.stats.worst), "Max drawdown": fmt(st.stats.max_drawdown), "Max DD %": pct(st.stats.max_drawdown_pct),
          "24 h PnL": signed(st.pnl_24h.net_pnl) })),
        panel("Execution", kv({ Fills: st.execution.fills, "Maker share": pct(st.execution.maker_ratio),
          "Fees (USDT)": fmt(st.execution.fees), "Notional": fmt(st.execution.notional, 0),
          "Fees per trade (R)": fmt(st.execution.fees_r_avg, 3), Orders: st.execution.orders_total })));
      }
      if (tab === "parameters") {
        out.append(panel("Parameters", kv(d.config)),
          isAdmin() && d.status !== "deprecated" && d.source === "live"
            ? h("button", { class: "btn primary", onclick: () => strategyForm(slug, load) }, "Edit parameters") : null);
      }
      if (tab === "history") {
        out.append(panel("Lifecycle", table(["When", "Event", "From", "To", "Detail"], d.events.map((e) =>
          [when(e.ts_ms), e.event, e.from_status || "", e.to_status || "", e.detail ? JSON.stringify(e.detail) : ""]))));
      }
    } catch (e) { out.append(h("div", { class: "empty", text: e.message })); }
  }
  load();
  every(30_000, () => { if (detail) load(); });
}

const SCORE_PAGE = 1000;

// A live strategy's newest score and the (at most) 1,000 before it. Score history pages oldest first,
// so a 24 h window holding more than one page is narrowed to the span a full page covered.
async function recentScores(d) {
  const ref = encodeURIComponent(d.slug);
  const history = (since) => api(`/strategies/${ref}/scores?limit=${SCORE_PAGE}&since_ms=${since}`);
  if (d.source !== "live") return { scores: (await history(0)).items, latest: null };
  const [latest] = await api(`/scores/latest?strategy=${ref}`);
  if (!latest) return { scores: [], latest: null };
  let page = await history(Math.max(0, latest.ts_ms - 86_400_000));
  if (page.next_cursor !== null && page.items.length > 1) {
    const span = page.items[page.items.length - 1].ts_ms - page.items[0].ts_ms;
    page = await history(Math.max(0, latest.ts_ms - Math.floor(span * 0.95)));
  }
  return { scores: page.items, latest };
}

async function renderSignals(out, d) {
  const recent = await recentScores(d);
  const scores = recent.scores;
  const latest = recent.latest || scores[scores.length - 1];
  const layers = h("div", { class: "layers" });
  const gates = h("div", { class: "gates" });
  if (latest) {
    for (const l of latest.layers) {
      const fill = h("div");
      fill.style.width = `${l.max ? Math.max(0, Math.min(100, (l.score / l.max) * 100)) : 0}%`;
      layers.append(h("div", { class: "layer" }, h("div", { class: "row" }, h("span", { text: l.name }),
        h("span", { class: "num", text: `${fmt(l.score, 1)} / ${fmt(l.max, 1)}` })), h("div", { class: "bar" }, fill)));
    }
    for (const g of latest.gates) gates.append(h("span", { class: `gate ${g.status}`, title: g.reason || "",
      text: `${g.name}: ${g.status.replace("_", " ")}` }));
  }
  const signals = await api(`/strategies/${encodeURIComponent(d.slug)}/signals?limit=20`);
  out.append(h("div", { class: "two" },
    panel("Latest score", latest ? h("div", {},
      h("div", { class: `score-big num ${latest.is_entry ? "pos" : ""}`, "data-ts": latest.ts_ms, text: fmt(latest.total, 1) }),
      h("p", { class: "muted", text: `${latest.symbol} · ${latest.side || "no side"} · ${latest.tier || "no tier"} · ${when(latest.ts_ms)}` }),
      latest.block_reason ? h("p", { class: "neg", text: `blocked: ${latest.block_reason}` }) : null, layers) : h("p", { class: "muted", text: "no score yet" })),
    panel("Gates", latest ? gates : h("p", { class: "muted", text: "–" }))),
  panel("Score history", lineChart([{ points: scores.map((x) => [x.ts_ms, x.total]) }])),
  panel("Signals", table(["When", "Symbol", "Side", "Action", "Score", "Tier", "Price"], signals.items.map((x) =>
    [when(x.ts_ms), x.symbol, x.side, x.action, fmt(x.score, 1), x.tier || "", fmt(x.price)]))));
}

async function renderTrades(out, slug) {
  const rows = [];
  const tbody = h("tbody");
  const more = h("button", { class: "btn", id: "more-trades" }, "Load more");
  let cursor = null;
  async function next() {
    const page = await api(`/strategies/${encodeURIComponent(slug)}/trades?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    cursor = page.next_cursor;
    for (const t of page.items) {
      rows.push(t);
      tbody.append(h("tr", {}, ...[when(t.exit_ms), t.symbol, t.side, fmt(t.qty, 4), fmt(t.entry_price), fmt(t.exit_price),
        t.exit_reason].map((v) => h("td", { text: v })), h("td", { class: `r num ${cls(t.net_pnl)}`, text: signed(t.net_pnl) }),
      h("td", { class: `r num ${cls(t.r_multiple)}`, text: signed(t.r_multiple) })));
    }
    more.classList.toggle("hidden", !cursor);
    if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: "9", class: "muted", text: "no trades yet" })));
  }
  more.addEventListener("click", next);
  out.append(panel("Trades", h("table", { id: "trades" }, h("thead", {}, h("tr", {}, ["Exit", "Symbol", "Side", "Qty", "Entry", "Exit price",
    "Reason", "Net PnL", "R"].map((x, i) => h("th", { class: i >= 7 ? "r" : "", text: x })))), tbody), more));
  await next();
}

function panel(title, ...children) { return h("section", { class: "panel" }, h("h2", { text: title }), ...children); }
function kv(obj) {
  return h("div", { class: "kv" }, Object.entries(obj).map(([k, v]) => h("div", {}, h("span", { text: k }),
    h("span", { class: "num", text: typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "–") }))));
}
function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { text: x })))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((v) => h("td", { text: String(v) }))))
      : [h("tr", {}, h("td", { colspan: String(headers.length), class: "muted", text: "nothing yet" }))]));
}
function positionsTable(list) {
  return table(["Strategy", "Symbol", "Side", "Qty", "Entry", "Mark", "Floating PnL", "Floating R", "Phase", "Opened"],
    list.map((p) => [p.strategy, p.symbol, p.side, fmt(p.qty, 4), fmt(p.entry_price), fmt(p.mark_price), signed(p.floating_pnl),
      signed(p.floating_r), p.phase || "", when(p.opened_ms)]));
}

// ------------------------------------------------------------------ market
function viewMarket(root, symbol) {
  const sym = symbol || state.symbols[0]?.symbol || "BTCUSDT";
  const body = h("div");
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Market" }),
    h("select", { "aria-label": "symbol", onchange: (e) => { location.hash = `#/market/${e.target.value}`; } },
      state.symbols.map((x) => h("option", { value: x.symbol, selected: x.symbol === sym }, x.symbol)))), body);
  async function load() {
    const out = [];
    try {
      const m = await api(`/market/${sym}`);
      const f = m.snapshot || { book_state: m.book.state || "warming up" };
      out.push(h("div", { class: "summary" }, kpi("Price", fmt(f.price)), kpi("CVD 5m", signed(f.cvd_5m, 3), cls(f.cvd_5m)),
        kpi("CVD 1h", signed(f.cvd_1h, 3), cls(f.cvd_1h)), kpi("ATR/price 5m", pct(f.atr_pct_5m)), kpi("OBI 10", fmt(f.obi_10, 3)),
        kpi("Spread (bps)", fmt(f.spread_bps, 2)), kpi("Funding", pct(f.funding_rate)), kpi("Book", f.book_state)));
      out.push(panel("Price and CVD (24 h)", legend([["price", "#6ea8ff"], ["CVD 1h", "#a58bff"]]),
        lineChart([{ points: m.series.map((p) => [p.ts_ms, p.price]) }, { points: m.series.map((p) => [p.ts_ms, p.cvd_1h]) }],
          { height: 260, area: false })));
      const bids = m.book.bids.slice(0, 10), asks = m.book.asks.slice(0, 10);
      out.push(h("div", { class: "two" },
        panel("Book top", table(["Bid qty", "Bid", "Ask", "Ask qty"], bids.map((b, i) => [fmt(b[1], 3), fmt(b[0]),
          asks[i] ? fmt(asks[i][0]) : "", asks[i] ? fmt(asks[i][1], 3) : ""]))),
        panel("Recent liquidations", table(["When", "Side", "Price", "Qty", "USD"], m.liquidations.slice(0, 15).map((l) =>
          [when(l.ts_ms), l.side, fmt(l.price), fmt(l.qty, 3), fmt(l.usd, 0)])))));
      out.push(panel("All features", kv(Object.fromEntries(Object.entries(f).filter(([k]) => k !== "symbol")))));
    } catch (e) {
      out.push(h("div", { class: "notice", text: e.status === 503 ? "The engine is not running: live features, book and series appear when it runs. Recorded indicators below." : e.message }));
    }
    try {
      const ind = await api(`/market/${sym}/indicators?hours=24`);
      out.push(h("div", { class: "three" },
        panel("Funding (recorded)", table(["When", "Rate", "Mark"], ind.funding.slice(0, 10).map((r) => [when(r.funding_ms), pct(r.rate), fmt(r.mark_price)]))),
        panel("Open interest", lineChart([{ points: ind.open_interest.map((r) => [r.ts_ms, r.open_interest]).reverse() }], { height: 160 })),
        panel("Liquidations (recorded)", table(["When", "Side", "USD"], ind.liquidations.slice(0, 10).map((r) => [when(r.ts_ms), r.side, fmt(r.usd, 0)])))));
    } catch (e) { out.push(h("div", { class: "empty", text: e.message })); }
    body.replaceChildren(...out);
  }
  every(5_000, load);
}

// ------------------------------------------------------------------ risk
function viewRisk(root) {
  const body = h("div");
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Risk" })), body);
  const cmd = (path, label, payload) => async () => {
    try { await api(`/risk/${path}`, { method: "POST", body: payload }); toast(`${label}: done`); load(); }
    catch (e) { toast(e.message, true); }
  };
  async function load() {
    const out = [];
    try {
      const r = await api("/risk");
      out.push(h("div", { class: "panel" }, h("div", { class: "toolbar" }, h("span", { class: `pill ${r.state}`, text: r.state }),
        h("span", { class: "muted", text: r.source === "journal" ? "engine not running: last persisted state" : `since ${when(r.since_ms)}` }),
        h("div", { class: "spacer" }),
        ...(isAdmin() ? [h("button", { class: "btn", onclick: cmd("block-new", "Block new", {}) }, "Block new entries"),
          h("button", { class: "btn", onclick: cmd("resume", "Resume", {}) }, "Resume"),
          h("button", { class: "btn danger", onclick: () => confirmDialog("Emergency close?", "Every position is closed by taker now and trading halts.",
            "Close everything", cmd("emergency-close", "Emergency close", { confirm: true })) }, "Emergency close")] : [])),
        h("p", {}, r.reasons.length ? `Reasons: ${r.reasons.join(", ")}` : "No active reasons."),
        r.manual ? h("p", { class: "muted", text: `Manual: block new ${r.manual.block_new ? "on" : "off"}; killed: ${(r.manual.killed || []).join(", ") || "none"}` }) : null));
      const strategies = Object.entries(r.strategies || {});
      if (strategies.length) out.push(panel("Per strategy", table(["Strategy", "State", "Reasons"], strategies.map(([k, v]) =>
        [k, v.state, (v.reasons || []).join(", ")]))));
      if (r.history?.length) out.push(panel("Recent transitions", table(["When", "State", "Reasons", "Source"], r.history.slice(-20).reverse().map((x) =>
        [when(x.ts_ms), x.state, (x.reasons || []).join(", "), x.source || ""]))));
    } catch (e) { out.push(h("div", { class: "empty", text: e.message })); }
    try {
      const ev = await api("/risk/events?limit=30");
      out.push(panel("Risk journal", table(["When", "Scope", "Level", "Kind", "Message"], ev.items.map((x) =>
        [when(x.ts_ms), x.scope, x.level, x.kind, x.message]))));
    } catch (e) { out.push(h("div", { class: "empty", text: e.message })); }
    body.replaceChildren(...out);
  }
  every(10_000, load);
}

// ------------------------------------------------------------------ backtests and system
function viewBacktests(root) {
  const body = h("div");
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Backtest jobs" })), body);
  async function load() {
    try {
      const jobs = await api("/backtests");
      body.replaceChildren(panel("Jobs", table(["Job", "Type", "Status", "Submitted", "Ended", "Message"], jobs.map((j) =>
        [j.job_id, j.type, j.status, when(j.submitted_ms), when(j.ended_ms), j.message || ""]))));
    } catch (e) { body.replaceChildren(h("div", { class: "empty", text: e.message })); }
  }
  every(5_000, load);
}

function viewSystem(root) {
  const body = h("div");
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "System" })), body);
  async function load() {
    const out = [];
    const v = await api("/system/versions").catch((e) => ({ error: e.message }));
    out.push(panel("Versions", kv({ arbray: v.arbray, python: v.python, schema: `${v.schema_version} / ${v.latest_schema_version}`,
      ...(v.packages || {}), ...(v.kinds ? Object.fromEntries(Object.entries(v.kinds).map(([k, x]) => [`kind ${k}`, x])) : {}) })));
    try {
      const hl = await api("/system/health");
      out.push(panel(`Engine: ${hl.ready ? "ready" : "not ready"} (${hl.mode})`, table(["Actor", "Alive", "Restarts", "Heartbeat"],
        Object.entries(hl.actors).map(([k, a]) => [k, a.alive ? "yes" : "NO", a.restarts, when(a.last_heartbeat_ms)])),
      table(["Symbol", "Fresh", "Book", "Warming up", "Last message"], Object.entries(hl.data).map(([k, d]) =>
        [k, d.fresh ? "yes" : "NO", d.book_state, d.warming_up ? "yes" : "no", when(d.last_message_ms)]))));
      const c = await api("/system/cluster");
      out.push(panel("Ray cluster", kv({ nodes: c.nodes.length, ...Object.fromEntries(Object.entries(c.resources.total || {}).map(([k, x]) =>
        [`${k} (avail/total)`, `${fmt(c.resources.available?.[k] ?? 0, 1)} / ${fmt(x, 1)}`])) })));
    } catch (e) { out.push(h("div", { class: "notice", text: e.status === 503 ? "The engine is not running." : e.message })); }
    body.replaceChildren(...out);
  }
  every(15_000, load);
}

// ------------------------------------------------------------------ boot
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("token").value.trim()); $("token").value = ""; });
  $("logout").addEventListener("click", () => logout());
  $("modal").addEventListener("click", (e) => { if (e.target.id === "modal") closeModal(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeModal(); });
  window.addEventListener("hashchange", () => { if (state.role) route(); });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved); else showLogin();
});
