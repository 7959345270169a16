// The dashboard at / of a running sluice host, in headless Chromium driven by playwright-core
// (no browser download: Debian's chromium, by executablePath).
//
// Started by tests/tests/dashboard_browser.rs, which runs the host (the bank account and the
// brittle `accounts` projection) and parks two withdrawals as dead letters first. Environment:
//   SLUICE_URL, SLUICE_ADMIN_TOKEN     the host and its admin token (two withdrawals parked)
//   SLUICE_CHROMIUM                    the browser binary (default /usr/bin/chromium)
//   SLUICE_FIXED_COMPONENT             accounts_projection.wasm, uploaded from the page
//   SLUICE_BRITTLE_COMPONENT           the running brittle version (for its sha256)
//   SLUICE_SCREENSHOT                  where the screenshot goes
// Exits non-zero with the reason on the first failed check.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const url = env("SLUICE_URL").replace(/\/$/, "");
const token = env("SLUICE_ADMIN_TOKEN");
const executablePath = env("SLUICE_CHROMIUM", "/usr/bin/chromium");
const fixedPath = env("SLUICE_FIXED_COMPONENT");
const brittlePath = env("SLUICE_BRITTLE_COMPONENT");
const screenshotPath = env("SLUICE_SCREENSHOT");
const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");
const [fixedSha, brittleSha] = [sha256(fixedPath), sha256(brittlePath)];
const SETTLE = 60_000;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function step(text) {
  console.log(`--> ${text}`);
}

// One command through the host's generic aggregate API; answers the event's position.
async function command(id, name, body) {
  const response = await fetch(`${url}/api/aggregates/BankAccount/${id}/commands/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  check(response.ok, `${name} ${id} answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer.position;
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const problems = [];
let closing = false;
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  page.setDefaultTimeout(SETTLE);
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => {
    if (!closing) problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.request().method()} ${response.url()}`);
  });

  step("the page loads and asks for the admin token");
  const response = await page.goto(`${url}/`);
  check(response.ok(), `GET / answered ${response.status()}`);
  check((await page.title()) === "Sluice", "the title");
  await page.locator("#connection", { hasText: "Not connected" }).waitFor();

  step("a wrong token is refused once, and the page stops asking");
  await page.fill("#token", `${token}-wrong`);
  await page.click("#token-save");
  await page.locator("#connection", { hasText: "Not connected: the bearer token is not the admin token" }).waitFor();
  await page.waitForTimeout(2500);
  const refusals = problems.filter((p) => p.startsWith("401 for GET"));
  check(refusals.length === 2, `one poll (plugins and dead letters) with the wrong token, then none:\n${problems.join("\n")}`);
  // Chromium logs each refused request as a console error too; those two are expected, nothing else.
  check(problems.every((p) => p.includes("status of 401") || p.startsWith("401 for GET")), `only the refusals:\n${problems.join("\n")}`);
  problems.length = 0;

  step("with the token it lists the plugins");
  await page.fill("#token", token);
  await page.click("#token-save");
  await page.locator("#connection", { hasText: "Connected: 2 plugin(s)" }).waitFor();
  const aggregate = page.locator('#plugins tr[data-plugin="BankAccount"]');
  const projection = page.locator('#plugins tr[data-plugin="accounts"]');
  await aggregate.waitFor();
  await projection.waitFor();
  check((await aggregate.locator("td").nth(1).textContent()) === "aggregate", "BankAccount is an aggregate");
  check((await projection.locator("td").nth(1).textContent()) === "projection", "accounts is a projection");
  check((await projection.locator('[data-field="sha256"]').getAttribute("title")) === brittleSha, "the brittle version runs");
  check(await page.evaluate(() => sessionStorage.getItem("sluice-admin-token")) === token, "the token is in sessionStorage");

  step("the parked withdrawals are listed");
  const letters = page.locator("#letters tbody tr[data-letter]");
  await page.waitForFunction(() => document.querySelectorAll("#letters tbody tr[data-letter]").length === 2);
  for (const id of ["dash-1", "dash-2"]) {
    const row = letters.filter({ hasText: `BankAccount ${id}` });
    check((await row.count()) === 1, `a letter for ${id}`);
    check((await row.locator("td").nth(3).textContent()).startsWith("FundsWithdrawnEvent"), `${id}'s withdrawal`);
    check((await row.locator("td").nth(6).textContent()).includes("cannot apply withdrawals"), `${id}'s reason`);
  }

  step("one letter is dropped from the page (after saying yes)");
  page.once("dialog", (dialog) => dialog.accept());
  await letters.filter({ hasText: "BankAccount dash-2" }).locator('button[data-action="drop"]').click();
  await page.locator("#message", { hasText: /dropped letter \d+/ }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#letters tbody tr[data-letter]").length === 1);
  const letter = letters.filter({ hasText: "BankAccount dash-1" });
  await letter.waitFor();

  step("a burst of commands, then the lag goes back to 0");
  let last = 0;
  await Promise.all(
    Array.from({ length: 12 }, async (_, n) => {
      const id = `burst-${n}`;
      await command(id, "OpenAccount", { accountHolder: id, accountType: "CURRENT", openingBalance: 50 });
      for (let k = 0; k < 4; k += 1) last = Math.max(last, await command(id, "DepositFunds", { amount: 1 + k }));
    }),
  );
  await page.waitForFunction(
    (head) => {
      const row = document.querySelector('#plugins tr[data-plugin="accounts"]');
      const field = (name) => row && row.querySelector(`[data-field="${name}"]`).textContent;
      return row && field("lag") === "0" && Number(field("position")) >= head && Number(field("head")) >= head;
    },
    last,
  );
  const lagSamples = await page.evaluate(() => document.querySelector('#lag-chart polyline[data-consumer="accounts"]')?.getAttribute("points"));
  check(lagSamples && lagSamples.split(" ").length >= 2, `the lag chart draws accounts: ${lagSamples}`);
  await page.locator("#lag-legend", { hasText: "accounts: lag 0" }).waitFor();

  step("the live events show the burst");
  await page.locator(`#events tr[data-position="${last}"]`).waitFor();
  check((await page.locator(`#events tr[data-position="${last}"] td`).nth(1).textContent()).startsWith("FundsDepositedEvent"), "the last deposit");

  step("the fixed projection is uploaded from the page");
  await page.fill("#upload-name", "accounts");
  await page.setInputFiles("#upload-file", fixedPath);
  await page.click("#upload-button");
  await page.locator("#message", { hasText: "accounts replaced" }).waitFor();
  await page.waitForFunction(
    (sha) => document.querySelector('#plugins tr[data-plugin="accounts"] [data-field="sha256"]')?.title === sha,
    fixedSha,
  );

  step("the letter is retried from the page");
  await letter.first().locator('button[data-action="retry"]').click();
  await page.locator("#message", { hasText: /retried letter \d+: applied 1 event/ }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#letters tbody tr").length === 0);
  check(await page.locator("#letters-empty").isVisible(), "no parked letters");

  step("a rebuild shows its progress to the end");
  await projection.locator('button[data-action="rebuild"]').click();
  await page.locator("#message", { hasText: /rebuilt accounts up to position \d+/ }).waitFor();
  await page.locator("#rebuild-label", { hasText: "Rebuilt accounts" }).waitFor();
  const bar = await page.evaluate(() => [document.getElementById("rebuild-bar").value, document.getElementById("rebuild-bar").max]);
  check(bar[0] === bar[1] && bar[0] >= last, `the bar is full at the head: ${bar}`);

  step("the swap history rolls back and forward");
  await projection.locator('button[data-action="history"]').click();
  const versions = page.locator("#history tbody tr");
  await page.waitForFunction(() => document.querySelectorAll("#history tbody tr").length === 2);
  check((await page.locator(`#history tr[data-sha256="${fixedSha}"]`).textContent()).includes("(running)"), "the fixed version runs");
  await page.locator(`#history tr[data-sha256="${brittleSha}"] button[data-action="activate"]`).click();
  await page.waitForFunction(
    (sha) => document.querySelector('#plugins tr[data-plugin="accounts"] [data-field="sha256"]')?.title === sha,
    brittleSha,
  );
  await page.locator(`#history tr[data-sha256="${brittleSha}"]`, { hasText: "(running)" }).waitFor();
  await page.locator(`#history tr[data-sha256="${fixedSha}"] button[data-action="activate"]`).click();
  await page.waitForFunction(
    (sha) => document.querySelector('#plugins tr[data-plugin="accounts"] [data-field="sha256"]')?.title === sha,
    fixedSha,
  );
  check((await versions.count()) === 2, "two versions");
  await page.waitForFunction(() => document.querySelector('#plugins tr[data-plugin="accounts"] [data-field="lag"]')?.textContent === "0");

  step(`screenshot at ${screenshotPath}`);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  check(problems.length === 0, `the page logged problems:\n${problems.join("\n")}`);
  console.log("dashboard: all checks passed");
} finally {
  closing = true;
  await browser.close();
}
