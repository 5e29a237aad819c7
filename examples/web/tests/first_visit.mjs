// The link `make dev` prints, opened as a newcomer opens it: Debian's Chromium driven by
// playwright-core. The page must open signed in (the token rides in the link's fragment),
// find the API on its own origin (no ?api=, config.js's apiBase empty), and a create must
// end with its variants shown.
//
//   node examples/web/tests/first_visit.mjs <printed link> <screenshot.png>
//
// Prints one JSON line with what it saw; exits 1 on the first failed check.

import { chromium } from "playwright-core";

const [link, screenshot] = process.argv.slice(2);
if (!link || !screenshot) throw new Error("usage: first_visit.mjs <link> <screenshot.png>");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const seen = { apiCalls: [], failures: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/v1/")) seen.apiCalls.push(new URL(r.url()).origin);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname.startsWith("/v1/")) seen.failures.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(link);
  await page.waitForSelector("#app:not([hidden])", { timeout: 20000 });
  seen.user = (await page.textContent("#account-user"))?.trim();
  seen.plan = (await page.textContent("#account-plan"))?.trim();
  seen.urlAfter = page.url();
  await page.fill("#brief", "3 reasons to drink water, upbeat");
  await page.fill("#variants", "2");
  await page.click("#create-btn");
  await page.waitForSelector("#variants-list > li", { timeout: 60000 });
  seen.status = (await page.textContent("#generation-status"))?.trim();
  seen.variants = await page.locator("#variants-list > li").count();
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
