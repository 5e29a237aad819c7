// The example app's journeys in a real browser: Debian's Chromium driven by playwright-core.
//
//   node examples/web/tests/journey.mjs   (the environment says where everything is)
//
// PAGE_URL    the built app (examples/web/dist) served from its own origin
// API_URL     the API (make dev's port, or a rehearsal's gateway); USAGE_URL optional
// TOKEN_STANDARD / TOKEN_FRESH / TOKEN_BASIC   bearer tokens: a Standard user, a user with
//             no plan, a Basic user; OUT_DIR  where screenshots and results.json go;
// FAIL_BRIEF  optional: a brief the server's writer refuses (its generation fails);
// CHROMIUM    the browser binary (default /usr/bin/chromium).
//
// Exits 1 on the first failed check (its message on stderr); writes results.json with each
// journey's time, the states the page showed and the accessibility findings.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const PAGE_URL = env("PAGE_URL");
const API_URL = env("API_URL");
const USAGE_URL = process.env.USAGE_URL ?? "";
const OUT = env("OUT_DIR");
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

mkdirSync(OUT, { recursive: true });
const results = { journeys: {}, axe: {}, screenshots: [], states: [] };

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function timed(name, run) {
  const started = Date.now();
  await run();
  results.journeys[name] = (Date.now() - started) / 1000;
  console.log(`journey ok: ${name} (${results.journeys[name].toFixed(1)} s)`);
}

async function shot(page, name) {
  const file = join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  results.screenshots.push(file);
}

/** axe-core over the page as it is; fails on any serious or critical violation. */
async function accessible(page, name) {
  await page.addScriptTag({ content: AXE });
  const found = await page.evaluate(async () => {
    // @ts-ignore axe is the injected global
    const report = await window.axe.run(document, { resultTypes: ["violations"] });
    return report.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  });
  results.axe[name] = found;
  const serious = found.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(serious.length === 0, `axe (${name}): ${JSON.stringify(serious, null, 1)}`);
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()) ?? "";
}

async function waitText(page, selector, pattern, timeout = 60_000) {
  await page.waitForFunction(
    ([sel, source]) => new RegExp(source).test(document.querySelector(sel)?.textContent ?? ""),
    [selector, pattern.source],
    { timeout },
  );
  return text(page, selector);
}

function pageUrl(extra = "") {
  const url = new URL(PAGE_URL);
  url.searchParams.set("api", API_URL);
  if (USAGE_URL) url.searchParams.set("usage", USAGE_URL);
  return url.toString() + extra;
}

async function signIn(page, token) {
  await page.goto(pageUrl());
  await page.getByLabel("ID token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#app").waitFor({ state: "visible" });
}

/** Record every state the generation panel shows (the states arrive faster than polls). */
async function watchStates(page) {
  await page.evaluate(() => {
    const el = document.getElementById("generation-status");
    // @ts-ignore a test-only record on window
    window.__states = [];
    new MutationObserver(() => {
      // @ts-ignore
      const s = el?.dataset.status;
      // @ts-ignore
      if (s && window.__states.at(-1) !== s) window.__states.push(s);
    }).observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
  });
}

/** Waits until the generation panel has shown a terminal state since the last `states`. */
async function settled(page, timeout = 60_000) {
  await page.waitForFunction(
    // @ts-ignore
    () => window.__states.some((s) => ["succeeded", "failed", "cancelled"].includes(s)),
    undefined,
    { timeout },
  );
}

async function states(page) {
  // @ts-ignore
  return page.evaluate(() => window.__states.splice(0));
}

async function api(method, path, token, body) {
  const response = await fetch(API_URL + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: await response.json().catch(() => null) };
}

async function creatorJourney(browser) {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const usageOrigins = new Set();
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === "/v1/usage") usageOrigins.add(new URL(r.url()).origin);
  });
  // The statuses the event streams were answered with (the page follows generations on
  // them; it polls only where a stream is missing or fails).
  const streams = new Set();
  results.eventStream = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.endsWith("/events")) {
      streams.add(r.status());
      results.eventStream = [...streams];
    }
  });

  await timed("sign-in", async () => {
    await page.goto(pageUrl());
    await shot(page, "desktop-1-signin");
    await accessible(page, "signin");
    // A refused token: the reason next to the field, focus on it.
    await page.getByLabel("ID token").fill("not-a-token");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    const refused = await waitText(page, "#token-error", /refused|expired/);
    check((await page.getAttribute("#token", "aria-invalid")) === "true", "token marked invalid");
    check(await page.evaluate(() => document.activeElement?.id === "token"), `focus on token (${refused})`);
    await page.getByLabel("ID token").fill(env("TOKEN_STANDARD"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#app").waitFor({ state: "visible" });
    check(/Standard plan/.test(await text(page, "#account-plan")), "plan badge says Standard");
    await waitText(page, "#meters", /Generations this month/);
    check(await page.locator("#meters meter").count() >= 2, "usage meters shown");
  });

  await timed("validation", async () => {
    await page.getByLabel("Brief").fill("");
    await page.getByRole("button", { name: "Create" }).click();
    const message = await waitText(page, "#brief-error", /\S/);
    check(!(await page.isHidden("#brief-error")), "brief error visible");
    check((await page.getAttribute("#brief", "aria-invalid")) === "true", "brief marked invalid");
    check(await page.evaluate(() => document.activeElement?.id === "brief"), "focus on the brief");
    await shot(page, "desktop-2-validation");
    results.validation = message;
  });

  if (process.env.FAIL_BRIEF) {
    await timed("failed", async () => {
      await watchStates(page);
      await page.getByLabel("Brief").fill(process.env.FAIL_BRIEF);
      await page.getByRole("button", { name: "Create" }).click();
      await settled(page);
      const seen = await states(page);
      results.states.push({ failed: seen });
      check(seen.at(-1) === "failed", `the refused brief ended ${seen.join(" → ")}`);
      const shown = await text(page, "#generation-status");
      check(/Failed: .*declined.*not charged/.test(shown), `failure explained: ${shown}`);
      check(!(await page.isHidden('#progress li.failed')), "the last step marked failed");
      results.failed = shown;
      await shot(page, "desktop-2b-failed");
    });
  }

  if (process.env.SLOW_BRIEF) {
    await timed("cancel", async () => {
      await watchStates(page);
      await page.getByLabel("Brief").fill(process.env.SLOW_BRIEF);
      await page.getByRole("button", { name: "Create" }).click();
      const cancel = page.getByRole("button", { name: "Cancel generation" });
      await cancel.waitFor({ state: "visible" });
      await page.waitForFunction(
        () => document.getElementById("generation-status")?.dataset.status === "running",
        undefined,
        { timeout: 30_000 },
      );
      await accessible(page, "running");
      await cancel.focus();
      await page.keyboard.press("Enter");
      await settled(page);
      const seen = await states(page);
      results.states.push({ cancel: seen });
      check(seen.at(-1) === "cancelled", `the cancelled job ended ${seen.join(" → ")}`);
      check(await page.isHidden("#cancel-bar"), "Cancel is gone once the job ended");
      check(
        await page.evaluate(() => document.activeElement?.id === "generation-status"),
        "focus on the generation's status",
      );
      const said = await waitText(page, "#announce", /Cancelled/);
      check(/Cancelled/.test(await text(page, "#generation-status")), "the status says Cancelled");
      results.cancelled = said;
      await shot(page, "desktop-2c-cancelled");
    });
  }

  await timed("create", async () => {
    await watchStates(page);
    await page.getByLabel("Brief").fill("3 reasons to drink more water, upbeat, 30 seconds");
    await page.getByRole("spinbutton", { name: "Variants" }).fill("3");
    await page.getByRole("button", { name: "Create" }).click();
    await settled(page);
    const seen = await states(page);
    results.states.push({ create: seen });
    check(seen.at(-1) === "succeeded", `create ended ${seen.join(" → ")}`);
    check(seen.length >= 2, `a state before the end was shown (${seen.join(" → ")})`);
    check((await page.locator("#variants-list > li").count()) === 3, "three variants");
    await shot(page, "desktop-3-variants");
    await accessible(page, "variants");
  });

  await timed("regenerate", async () => {
    const second = page.locator("#variants-list > li").nth(1);
    const before = await second.locator(".hook").textContent();
    await second.getByText("Rewrite parts of this variant").click();
    await second.getByRole("button", { name: "Rewrite selected parts" }).click();
    await settled(page);
    await page.locator("#variants-list > li .badge").first().waitFor();
    const after = await page.locator("#variants-list > li").nth(1).locator(".hook").textContent();
    check(after !== before, "the hook was rewritten");
    check((await page.locator("#variants-list > li").count()) === 3, "still three variants");
    results.states.push({ targeted: await states(page) });
    // At once again: the draft's cooldown answers 429; the client waits it out, showing it.
    await page.getByRole("button", { name: "Regenerate all variants" }).click();
    const countdown = await waitText(page, "#notice", /Cooldown for this draft: trying again in \d+ s/, 15_000);
    results.countdown = countdown;
    await shot(page, "desktop-4-cooldown");
    await settled(page);
    const seen = await states(page);
    results.states.push({ full: seen });
    check(seen.at(-1) === "succeeded", `full regenerate ended ${seen.join(" → ")}`);
    check(!(await page.locator("#variants-list > li .badge").count()), "full replaced every variant");
  });

  await timed("save", async () => {
    const first = page.locator("#variants-list > li").first();
    await first.getByLabel("Title", { exact: true }).fill("Water reasons");
    await first.getByLabel("Tags", { exact: true }).fill("water, health");
    await first.getByRole("button", { name: "Save to library" }).click();
    await first.getByText(/Saved to your library/).waitFor();
    const second = page.locator("#variants-list > li").nth(1);
    await second.getByLabel("Tags", { exact: true }).fill("Bad tag!");
    await second.getByRole("button", { name: "Save to library" }).click();
    const tagError = second.locator('[data-error-for="tags"]');
    await tagError.waitFor({ state: "visible" });
    check((await second.getByLabel("Tags", { exact: true }).getAttribute("aria-invalid")) === "true", "tags invalid");
    results.tagError = await tagError.textContent();
  });

  await timed("library", async () => {
    await page.locator("#search-tags").fill("water");
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /1 asset found/);
    await page.locator("#search-tags").fill("");
    await page.locator("#search-q").fill("zzzz-nothing");
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /Nothing matches/);
    await page.locator("#search-q").fill("");
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /^1 asset\./);
    const item = page.locator("#assets > li").first();
    // Edit with If-Match.
    await item.getByRole("button", { name: /Edit/ }).click();
    await item.getByLabel("Title", { exact: true }).fill("Water, three ways");
    await item.getByLabel("Status", { exact: true }).selectOption("published");
    await item.getByRole("button", { name: "Save changes" }).click();
    await item.getByRole("heading", { name: "Water, three ways" }).waitFor();
    check(/published/.test((await item.textContent()) ?? ""), "status saved");
    // Delete, undo, delete, restore from the deleted view.
    await item.getByRole("button", { name: /Delete/ }).click();
    await item.getByRole("button", { name: "Undo" }).waitFor();
    await item.getByRole("button", { name: "Undo" }).click();
    await item.getByRole("heading", { name: "Water, three ways" }).waitFor();
    await item.getByRole("button", { name: /Delete/ }).click();
    await item.getByRole("button", { name: "Undo" }).waitFor();
    await page.getByLabel("Show").selectOption("true");
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /1 deleted asset/);
    await shot(page, "desktop-5-deleted");
    await page.locator("#assets > li").first().getByRole("button", { name: "Restore" }).click();
    await page.locator("#assets > li").first().getByText(/Restored/).waitFor();
    await page.getByLabel("Show").selectOption("");
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /^1 asset\./);
  });

  await timed("usage", async () => {
    await page.reload();
    await page.locator("#app").waitFor({ state: "visible" });
    const meters = await waitText(page, "#meters", /3 of 300/);
    check(/resets/.test(meters), "reset time shown");
    check(/1 of 30/.test(meters), "one full regeneration counted");
    results.usage = meters;
    await page.getByRole("button", { name: "Search" }).click();
    await waitText(page, "#library-status", /asset/);
    await shot(page, "desktop-6-app");
    await accessible(page, "app");
  });

  await timed("phone", async () => {
    await page.setViewportSize(PHONE);
    await shot(page, "phone-1-app");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `no sideways scrolling at phone width (${overflow}px too wide)`);
    await accessible(page, "phone-app");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#signin").waitFor({ state: "visible" });
    await shot(page, "phone-2-signin");
  });

  await timed("keyboard", async () => {
    // Tab from the top reaches the skip link, then the form, without a mouse.
    await page.setViewportSize(DESKTOP);
    await page.goto(pageUrl());
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement?.textContent === "Skip to content"), "skip link first");
    await page.keyboard.press("Tab");
    const second = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 80));
    check(second?.startsWith('<textarea id="token"'), `then the token field, not ${second}`);
  });
  check(consoleErrors.length === 0, `page errors: ${consoleErrors.join("; ")}`);
  // Usage is read where the page is told to read it (a function's own URL, or the API).
  const expected = new URL(USAGE_URL || API_URL).origin;
  check([...usageOrigins].join() === expected, `usage read from ${[...usageOrigins]}, not ${expected}`);
  results.usageFrom = expected;
  await context.close();
}

async function noPlanJourney(browser) {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  await timed("no-plan", async () => {
    await signIn(page, env("TOKEN_FRESH"));
    check(/No plan/.test(await text(page, "#account-plan")), "no plan badge");
    await page.getByRole("button", { name: /Standard/ }).click();
    const billing = await waitText(page, "#billing-status", /\S/);
    results.billing = billing;
    await page.getByLabel("Brief").fill("a brief");
    await page.getByRole("button", { name: "Create" }).click();
    const problem = await waitText(page, "#create-problem", /need a plan/);
    results.noPlan = problem;
    await shot(page, "phone-3-no-plan");
    await accessible(page, "no-plan");
  });
  await context.close();
}

async function limitJourney(browser) {
  const token = env("TOKEN_BASIC");
  // Use the hour up through the API (Basic: 10 an hour, one at a time).
  for (let i = 0; ; i += 1) {
    const made = await api("POST", "/v1/create", token, { brief: `filler ${i}`, platform: "tiktok" });
    if (made.status === 429) break;
    check(made.status === 202, `filler create answered ${made.status}`);
    for (;;) {
      const g = await api("GET", `/v1/generations/${made.json.generation_id}`, token);
      if (g.json.status === "succeeded" || g.json.status === "failed") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    check(i < 30, "the hourly limit never answered"); // 10, or 20 across an hour boundary
  }
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await timed("hourly-limit", async () => {
    await signIn(page, token);
    await page.getByLabel("Brief").fill("one more");
    await page.getByRole("button", { name: "Create" }).click();
    const shown = await waitText(page, "#create-problem", /You can try again in/);
    await page.waitForTimeout(1200); // let the countdown tick once
    const later = await text(page, "#create-problem");
    check(shown !== later, "the countdown moves");
    check(await page.isDisabled("#create-btn"), "Create waits for the countdown");
    results.hourly = later;
    await shot(page, "desktop-7-hourly-limit");
  });
  await context.close();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
  ],
});
let failed = null;
try {
  await creatorJourney(browser);
  await noPlanJourney(browser);
  await limitJourney(browser);
} catch (error) {
  failed = error;
} finally {
  await browser.close();
  writeFileSync(join(OUT, "results.json"), JSON.stringify(results, null, 2));
}
if (failed) {
  console.error(failed instanceof Error ? failed.stack : failed);
  process.exit(1);
}
console.log("all journeys ok");
