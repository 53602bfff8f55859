// Drives the arbray dashboard in Debian's Chromium: sign in, create a strategy through the form (with a
// live weights check), find it on the plaza, pause it, open a strategy with journalled trades, and take
// screenshots. Usage: node drive.mjs BASE_URL TOKEN SLUG_WITH_TRADES SCREENSHOT_DIR. Prints one JSON line.
import { chromium } from "playwright-core";

const [base, token, tradedSlug, shots] = process.argv.slice(2);
const result = { steps: [] };
const step = (name, extra = {}) => result.steps.push({ name, ...extra });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(base + "/");
  await page.fill("#token", "arb_0000000000000000_" + "x".repeat(43));
  await page.click("#login-button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
  step("bad token refused", { message: await page.textContent("#login-error") });
  await page.fill("#token", token);
  await page.click("#login-button");
  await page.waitForSelector("#cards");
  step("signed in", { who: await page.textContent("#who") });
  result.token_in_storage = await page.evaluate(() => sessionStorage.getItem("arbray.token") !== null);
  result.token_in_local_storage = await page.evaluate(() => Object.keys(localStorage).length > 0);

  await page.click("#new-strategy");
  await page.waitForSelector("#strategy-form");
  await page.fill("#f-display_name", "ETH momentum (browser)");
  await page.fill("#f-strategy_id", "eth_browser");
  await page.selectOption("#f-symbol", "ETHUSDT");
  result.eth_obi_default = await page.inputValue("#f-obi_threshold");
  await page.fill("#f-weight_env", "30");
  result.save_disabled_when_weights_105 = await page.isDisabled("#save-strategy");
  result.weights_message = await page.textContent(".weights-sum");
  await page.fill("#f-weight_direction", "50");
  result.save_enabled_when_weights_100 = await page.isEnabled("#save-strategy");
  await page.fill("#f-entry_score", "99");
  result.entry_error = await page.textContent("#f-entry_score + .err");
  await page.fill("#f-entry_score", "78");
  await page.fill("#f-flip_threshold", "70");  // server-side cross-field rule: flip must be >= entry
  await page.click("#save-strategy");
  await page.waitForFunction(() => document.querySelector("#f-flip_threshold + .err")?.textContent.length > 0);
  result.api_field_error = await page.textContent("#f-flip_threshold + .err");
  await page.screenshot({ path: `${shots}/dashboard-create.png` });
  await page.fill("#f-flip_threshold", "85");
  await page.click("#save-strategy");
  await page.waitForSelector('article[data-slug="eth_browser"]');
  step("created", { toast: await page.textContent("#toast") });

  const card = page.locator('article[data-slug="eth_browser"]');
  result.card_status_before = await card.locator(".badge").textContent();
  await card.locator('button[data-action="pause"]').click();
  await page.waitForSelector('article[data-slug="eth_browser"] .badge.paused');
  result.card_status_after = await card.locator(".badge").textContent();
  step("paused");
  await page.selectOption('select[aria-label="source"]', "");
  await page.waitForSelector('article[data-slug="v51_baseline@bt-seed"]');
  await page.screenshot({ path: `${shots}/dashboard-plaza.png` });

  await page.goto(`${base}/#/strategy/${encodeURIComponent(tradedSlug)}`);
  await page.waitForSelector(".score-big");
  result.layer_bars = await page.locator(".layer").count();
  result.gates = await page.locator(".gate").count();
  await page.screenshot({ path: `${shots}/dashboard-detail-signals.png` });
  await page.click('button[data-tab="trades"]');
  await page.waitForSelector("#trades tbody tr");
  result.trade_rows = await page.locator("#trades tbody tr").count();
  await page.click('button[data-tab="equity"]');
  await page.waitForSelector("svg.chart polyline");
  await page.screenshot({ path: `${shots}/dashboard-detail-equity.png` });
  step("detail");

  await page.goto(`${base}/#/risk`);
  await page.waitForSelector(".pill");
  await page.goto(`${base}/#/market/BTCUSDT`);
  await page.waitForSelector(".notice, .summary");
  result.market_notice = (await page.locator(".notice").count()) > 0;
  step("market");
  // 401: the refused token; 422: the cross-field error the form shows; 503: no engine attached
  result.errors = errors.filter((e) => !["401", "422", "503"].some((code) => e.includes(`status of ${code}`)));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
