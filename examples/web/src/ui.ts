/** DOM helpers: element building, live announcements, field errors, countdowns, wording. */

import { type ApiProblem, fieldName, isLimit } from "../../../clients/ts/src/index.js";

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
}

type Attrs = Record<string, string | boolean | number | undefined>;
type Child = Node | string | null | undefined | false;

/** `h("button", {type: "button", class: "x"}, "Save")`: attributes as strings, false skips. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

let announceTimer: ReturnType<typeof setTimeout> | undefined;

/** Says `text` through the polite live region (cleared first, so a repeat is spoken). */
export function announce(text: string): void {
  const region = $("announce");
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Clears the field errors of `form` (messages hidden, aria-invalid removed). */
export function clearFieldErrors(form: HTMLElement): void {
  for (const p of form.querySelectorAll<HTMLElement>("[data-error-for]")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/**
 * Puts each field error of a VALIDATION_FAILED problem under its input in `form`, marks
 * the input invalid and focuses the first. Returns the messages no field of the form
 * could take (shown by the caller with the form's general problem).
 */
export function showFieldErrors(form: HTMLElement, problem: ApiProblem): string[] {
  clearFieldErrors(form);
  if (problem.code !== "VALIDATION_FAILED") return [];
  const orphans: string[] = [];
  let first: HTMLElement | null = null;
  for (const error of problem.fields) {
    const name = fieldName(error);
    const slot = form.querySelector<HTMLElement>(`[data-error-for="${name}"]`);
    if (!slot) {
      orphans.push(`${error.loc.join(".") || "body"}: ${error.msg}`);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent} ${error.msg}` : error.msg;
    slot.hidden = false;
    const input = form.querySelector<HTMLElement>(`[aria-describedby~="${slot.id}"]`);
    input?.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  first?.focus();
  return orphans;
}

/** "8 s", "4 min 05 s", "2 h 03 min", "3 d 4 h". */
export function formatWait(totalS: number): string {
  const s = Math.max(0, Math.round(totalS));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/**
 * Shows "`label` N" in `target`, counting down each second, then calls `done`. The
 * label is announced once (the ticking number is hidden from screen readers, which
 * would otherwise read every second).
 */
export class Countdown {
  private timer: ReturnType<typeof setInterval> | undefined;

  start(target: HTMLElement, seconds: number, label: string, done: () => void): void {
    this.stop();
    const until = Date.now() + seconds * 1000;
    const tick = h("span", { class: "tick", "aria-hidden": "true" });
    target.replaceChildren(h("span", {}, label, " "), tick);
    target.hidden = false;
    const update = (): void => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        this.stop();
        done();
        return;
      }
      tick.textContent = formatWait(left);
    };
    update();
    announce(`${label} ${formatWait(seconds)}`);
    this.timer = setInterval(update, 250);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const PLAN_HINT = "Choose a plan under Plan and usage.";

/** What a person should read for `problem` (the API's own message where it is the best). */
export function describe(problem: ApiProblem, apiBase: string): string {
  switch (problem.code) {
    case "NETWORK":
      return (
        `Cannot reach the API at ${apiBase}. Check that it is running and that this page's ` +
        `origin (${location.origin}) is in its CORS_ALLOWED_ORIGINS.`
      );
    case "BAD_RESPONSE":
      return `The server answered HTTP ${problem.status ?? "?"} without an API error body (a proxy or gateway?).`;
    case "UNAUTHENTICATED":
      return "Your sign-in was refused or has expired. Sign in again.";
    case "SUBSCRIPTION_REQUIRED":
      return `You need a plan to create. ${PLAN_HINT}`;
    case "PLAN_FEATURE_UNAVAILABLE":
      return `${problem.message} Upgrade your plan to use it.`;
    case "MONTHLY_QUOTA_EXCEEDED":
      return `You have used all ${problem.limit ?? ""} generations of this month.`;
    case "HOURLY_LIMIT_EXCEEDED":
      return `You have used all ${problem.limit ?? ""} generations of this hour.`;
    case "FULL_REGEN_CAP_EXCEEDED":
      return `You have used all ${problem.limit ?? ""} full regenerations of this month.`;
    case "COOLDOWN_ACTIVE":
      return "This draft was regenerated moments ago.";
    case "CONCURRENCY_LIMIT":
      return "Your other generations are still running.";
    case "PROVIDER_BUSY":
    case "SERVICE_UNAVAILABLE":
      return "The service is busy.";
    case "GENERATION_IN_PROGRESS":
      return "This draft is still being written; wait for it to finish.";
    case "PRECONDITION_FAILED":
      return "This was changed elsewhere since you opened it; the latest version is shown.";
    case "NOT_FOUND":
      return "It no longer exists (or is not yours).";
    case "SUBSCRIPTION_EXISTS":
      return "You already have a plan: change it with Manage billing.";
    default:
      return problem.requestId
        ? `${problem.message} (request ${problem.requestId})`
        : problem.message;
  }
}

/** The wait `problem` imposes before trying again, in seconds (0 when none). */
export function waitOf(problem: ApiProblem): number {
  return isLimit(problem) ? problem.retryAfterS : 0;
}
