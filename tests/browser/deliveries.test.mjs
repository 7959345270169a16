// The dashboard's parked deliveries, in headless Chromium driven by playwright-core (Debian's
// chromium, by executablePath, as dashboard.test.mjs).
//
// Started by tests/tests/dashboard_deliveries_browser.rs, which runs the host with the
// account-notifier reactor and a webhook that refused until two notifications parked, then
// recovered. Environment:
//   SLUICE_URL, SLUICE_ADMIN_TOKEN     the host and its admin token
//   SLUICE_CHROMIUM                    the browser binary (default /usr/bin/chromium)
//   SLUICE_RETRY, SLUICE_DROP          the delivery letter ids to retry and to drop from the page
// Exits non-zero with the reason on the first failed check.

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const url = env("SLUICE_URL").replace(/\/$/, "");
const token = env("SLUICE_ADMIN_TOKEN");
const executablePath = env("SLUICE_CHROMIUM", "/usr/bin/chromium");
const [retryId, dropId] = [env("SLUICE_RETRY"), env("SLUICE_DROP")];
const SETTLE = 60_000;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  page.setDefaultTimeout(SETTLE);
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.request().method()} ${response.url()}`);
  });

  console.log("--> the parked deliveries are listed in their own table");
  await page.goto(`${url}/`);
  await page.fill("#token", token);
  await page.click("#token-save");
  await page.locator("#connection", { hasText: "Connected" }).waitFor();
  const rows = page.locator("#deliveries tbody tr[data-delivery]");
  await page.waitForFunction(() => document.querySelectorAll("#deliveries tbody tr[data-delivery]").length === 2);
  check(await page.locator("#deliveries-empty").isHidden(), "the empty note is hidden");
  check(await page.locator("#letters-empty").isVisible(), "no event letters: the deliveries are apart");
  const retryRow = page.locator(`#deliveries tr[data-delivery="${retryId}"]`);
  const cells = await retryRow.locator("td").allTextContents();
  check(cells[0] === retryId.replace(/^delivery:/, ""), `the message id: ${cells}`);
  check(cells[1] === "account-notifier" && cells[2] === "notifications", `reactor and channel: ${cells}`);
  check(cells[5] === "2" && cells[6].length > 0, `attempts and reason: ${cells}`);

  console.log("--> one is retried from the page");
  await retryRow.locator('button[data-action="retry"]').click();
  await page.locator("#message", { hasText: "is pending again" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#deliveries tbody tr[data-delivery]").length === 1);

  console.log("--> the other is dropped from the page (after saying yes)");
  page.once("dialog", (dialog) => dialog.accept());
  await page.locator(`#deliveries tr[data-delivery="${dropId}"] button[data-action="drop"]`).click();
  await page.locator("#message", { hasText: "dropped" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#deliveries tbody tr[data-delivery]").length === 0);
  check(await page.locator("#deliveries-empty").isVisible(), "no parked deliveries");
  check((await rows.count()) === 0, "no rows left");
  check(problems.length === 0, `no console errors or failed requests:\n${problems.join("\n")}`);
  console.log("--> done");
} finally {
  await browser.close();
}
