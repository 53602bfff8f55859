// Drives the arbray dashboard in Debian's Chromium against a running engine (tests/e2e/test_dashboard_live.py):
// sign in, create an eager strategy through the form, see it scored (and the score move on), see its paper
// position, pause it on the plaza while the position is open, see its scores stop and the position closed
// into a trade, and check that a long-running strategy's detail page shows its newest score.
// Usage: node drive_live.mjs BASE_URL TOKEN SCREENSHOT_DIR CONFIG_JSON. Prints one JSON line on stdout;
// progress lines (one per step, with the elapsed seconds) go to stderr.
import { chromium } from "playwright-core";

const [base, token, shots, configJson] = process.argv.slice(2);
const cfg = JSON.parse(configJson);
// cfg: { name, display_name, fields: {input id suffix: value}, checks: {id suffix: bool}, preset,
//        every_ms, deadlines_s: {scored, position, trade, preset} }
const t0 = Date.now();
const result = { steps: [] };
const step = (name, extra = {}) => {
  const s = { name, t_s: (Date.now() - t0) / 1000, ...extra };
  result.steps.push(s);
  process.stderr.write(JSON.stringify(s) + "\n");
};

/** Call `probe` every `everyMs` until it returns a truthy value; a probe that throws (a slow render on a
 * loaded machine) counts as "not yet". Throws naming `what` and the last probe error after `seconds`. */
async function poll(what, seconds, probe, everyMs = 400) {
  const deadline = Date.now() + seconds * 1000;
  let last = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}${last ? `; last: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
/** A GET on the API from inside the page, with the signed-in token (what the dashboard itself sends). */
const apiGet = (path) => page.evaluate(async (p) => {
  const r = await fetch(`/api/v1${p}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem("arbray.token")}` } });
  return r.json();
}, path);
const detailUrl = (slug) => `${base}/#/strategy/${encodeURIComponent(slug)}`;
/** The detail page's latest score as shown: its total and timestamp (data-ts), after re-rendering the tab. */
async function shownScore() {
  await page.click('button[data-tab="signals"]');
  await page.waitForSelector(".score-big, .panel p.muted", { timeout: 30_000 });
  const el = await page.$(".score-big");
  if (!el) return null;
  return { total: await el.textContent(), ts_ms: Number(await el.getAttribute("data-ts")) };
}
const rows = (sel, cells) => page.evaluate(([s, n]) => [...document.querySelectorAll(s)]
  .filter((tr) => tr.children.length === n).map((tr) => [...tr.children].map((td) => td.textContent)), [sel, cells]);

try {
  await page.goto(base + "/");
  await page.fill("#token", token);
  await page.click("#login-button");
  await page.waitForSelector("#cards");
  step("signed in", { who: await page.textContent("#who") });

  // ---- create through the form
  await page.click("#new-strategy");
  await page.waitForSelector("#strategy-form");
  await page.fill("#f-display_name", cfg.display_name);
  await page.fill("#f-strategy_id", cfg.name);
  for (const [key, value] of Object.entries(cfg.fields)) {
    const sel = `#f-${key}`;
    if ((await page.$eval(sel, (e) => e.tagName)) === "SELECT") await page.selectOption(sel, String(value));
    else await page.fill(sel, String(value));
  }
  for (const [key, on] of Object.entries(cfg.checks)) await page.setChecked(`#f-${key}`, on);
  result.weights_message = await page.textContent(".weights-sum");
  await page.click("#save-strategy");
  const card = page.locator(`article[data-slug="${cfg.name}"]`);
  await card.waitFor({ timeout: 30_000 });
  step("created", { toast: await page.textContent("#toast") });

  // ---- scored: the detail page shows a score with layer bars and gates, and a newer one a few cycles later
  await page.goto(detailUrl(cfg.name));
  const first = await poll("the first score on the detail page", cfg.deadlines_s.scored, shownScore);
  result.layer_bars = await page.locator(".layer").count();
  result.gates = await page.locator(".gate").count();
  result.gate_states = await page.locator(".gate").allTextContents();
  const newer = await poll("a newer score on the detail page", cfg.deadlines_s.scored,
    async () => { const s = await shownScore(); return s && s.ts_ms > first.ts_ms ? s : null; });
  result.first_score = first;
  result.newer_score = newer;
  step("scored", { first, newer });
  await page.screenshot({ path: `${shots}/dashboard-live-scored.png` });

  // ---- the paper position on the detail page
  const position = await poll("an open position on the detail page", cfg.deadlines_s.position, async () => {
    await page.click('button[data-tab="positions"]');
    await page.waitForSelector(".panel table", { timeout: 30_000 });
    const r = await rows(".panel table tbody tr", 10);
    return r.length ? r[0] : null;
  });
  result.position_row = position;
  step("position shown", { position });
  await page.screenshot({ path: `${shots}/dashboard-live-position.png` });

  // ---- pause on the plaza while a position is open (an eager strategy is in a position most of the time)
  await page.goto(`${base}/#/plaza`);
  const openStat = card.locator(".stat", { has: page.locator(".label", { hasText: /^Open$/ }) }).locator(".value");
  await poll("the plaza card to show an open position", cfg.deadlines_s.position, async () => {
    await page.evaluate(() => window.dispatchEvent(new HashChangeEvent("hashchange")));  // re-render the plaza now
    await card.waitFor({ timeout: 30_000 });
    return Number(await openStat.textContent()) >= 1;
  }, 250);
  result.card_status_before = await card.locator(".badge").textContent();
  result.card_open_before = Number(await openStat.textContent());
  result.card_score_before = await card.locator(".stat", { has: page.locator(".label", { hasText: /^Score$/ }) })
    .locator(".value").textContent();
  await card.locator('button[data-action="pause"]').click();
  await page.waitForSelector(`article[data-slug="${cfg.name}"] .badge.paused`, { timeout: 30_000 });
  result.card_status_after = await card.locator(".badge").textContent();
  step("paused", { open_before: result.card_open_before });
  await page.screenshot({ path: `${shots}/dashboard-live-plaza.png` });

  // ---- no newer score after the pause, while the market moves on: the other strategy's journalled scores
  // pass the pause (scores of one snapshot are journalled together, so ours up to then are in too)
  const marketAtPause = (await apiGet("/market/snapshots")).BTCUSDT.ts_ms;
  const presetRef = encodeURIComponent(cfg.preset);
  const presetLatest = async () => (await apiGet(`/scores/latest?strategy=${presetRef}`))[0]?.ts_ms ?? 0;
  const journalPast = (ms) => poll(`${cfg.preset}'s journalled scores to pass ${ms}`, 30,
    async () => (await presetLatest()) >= ms, 200);
  await page.goto(detailUrl(cfg.name));
  await journalPast(marketAtPause + 10 * cfg.every_ms);
  const atPause = await poll("the detail page after the pause", 15, shownScore);
  await journalPast(atPause.ts_ms + 20 * cfg.every_ms);
  const later = await shownScore();
  result.market_at_pause = marketAtPause;
  result.score_at_pause = atPause;
  result.score_later = later;
  result.preset_latest_later = await presetLatest();
  step("not scored while paused", { market_at_pause: marketAtPause, at_pause: atPause, later });

  // ---- the open position is still managed: it closes into a trade on the trades tab
  const trade = await poll("a closed trade on the trades tab", cfg.deadlines_s.trade, async () => {
    await page.click('button[data-tab="trades"]');
    await page.waitForSelector("#trades tbody tr", { timeout: 30_000 });
    const r = await rows("#trades tbody tr", 9);
    return r.length ? r[0] : null;
  }, 1000);
  result.trade_row = trade;
  step("trade shown", { trade });
  await page.screenshot({ path: `${shots}/dashboard-live-trades.png` });
  await page.click('button[data-tab="positions"]');
  await page.waitForSelector(".panel table", { timeout: 30_000 });
  result.positions_after = (await rows(".panel table tbody tr", 10)).length;

  // ---- a strategy with more than one page of scores shows its newest one (not the oldest page's last)
  await poll(`${cfg.preset} to have more than one page of scores`, cfg.deadlines_s.preset,
    async () => (await apiGet(`/strategies/${presetRef}/scores?limit=1000`)).next_cursor !== null, 1000);
  await page.goto(detailUrl(cfg.preset));
  await poll(`${cfg.preset}'s detail page`, 15, shownScore);
  const [apiLatest] = await apiGet(`/scores/latest?strategy=${presetRef}`);
  const presetShown = await shownScore();
  result.preset = { api_latest_ts_before_render: apiLatest.ts_ms, shown: presetShown,
    history_lines: await page.locator("svg.chart polyline").count() };
  step("long-running strategy shows its newest score", result.preset);
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  result.view_html = await page.evaluate(() => document.querySelector("#view")?.innerHTML.slice(0, 3000)).catch(() => null);
  await page.screenshot({ path: `${shots}/dashboard-live-failure.png` }).catch(() => {});
} finally {
  result.errors = errors;
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
