/**
 * The Reel Content example app: sign in, create and watch a generation, regenerate and
 * save variants, search and edit the library, see plan and usage. Every call goes through
 * the typed client in clients/ts (retries, Idempotency-Key, typed problems).
 */

import "./style.css";

import {
  type ApiProblem,
  type Asset,
  type CreateRequest,
  type Generation,
  type Platform,
  type Product,
  ReelClient,
  type RetryEvent,
  type Usage,
  type UsageCounter,
  UserAction,
  type Variant,
  type VariantField,
  isLimit,
} from "../../../clients/ts/src/index.js";
import {
  $,
  Countdown,
  announce,
  clearFieldErrors,
  describe,
  formatTime,
  h,
  showFieldErrors,
} from "./ui.js";

declare global {
  interface Window {
    REEL_CONFIG?: { apiBase?: string; usageFunctionUrl?: string; eventsUrl?: string };
  }
}

// ---- configuration: ?api= > config.js > this page's own origin -------------------------

const params = new URLSearchParams(location.search);
const config = window.REEL_CONFIG ?? {};
const API_BASE = (params.get("api") ?? config.apiBase ?? "") || location.origin;
const USAGE_BASE = params.get("usage") ?? config.usageFunctionUrl ?? "";
// Where the event stream is served (the generations function's own URL behind a gateway
// that buffers); the client polls instead when the stream is not there or fails.
const EVENTS_BASE = params.get("events") ?? config.eventsUrl ?? "";
const TOKEN_KEY = "reel.token";

let token: string | null = sessionStorage.getItem(TOKEN_KEY);
const notice = new Countdown();

const client = new ReelClient({
  baseUrl: API_BASE,
  ...(USAGE_BASE ? { usageBaseUrl: USAGE_BASE } : {}),
  getToken: () => token,
  onRetry: showRetry,
  eventStream: EVENTS_BASE ? { baseUrl: EVENTS_BASE } : {},
});

/** The client waits out short 429s and 503s itself: show that wait as a countdown. */
function showRetry(event: RetryEvent): void {
  const box = $("notice");
  const why =
    event.code === "COOLDOWN_ACTIVE"
      ? "Cooldown for this draft: trying again in"
      : event.status === null
        ? "Connection lost: trying again in"
        : "The service is busy: trying again in";
  box.classList.add("waiting");
  notice.start(box, event.delayMs / 1000, why, () => {
    box.hidden = true;
    box.classList.remove("waiting");
  });
}

// ---- sign in -----------------------------------------------------------------------------

function subjectOf(jwt: string): string {
  try {
    const part = jwt.split(".")[1] ?? "";
    const json: unknown = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof json === "object" && json !== null && "sub" in json && typeof json.sub === "string") {
      return json.sub;
    }
  } catch {
    // not a JWT we can read: the server decides anyway
  }
  return "signed in";
}

async function signIn(candidate: string): Promise<void> {
  const form = $("signin-form");
  clearFieldErrors(form);
  token = candidate.trim();
  if (!token) {
    showFieldErrors(form, validation("token", "Paste a token first."));
    return;
  }
  const result = await client.usage();
  if (!result.ok) {
    token = null;
    const slot = $("token-error");
    slot.textContent = describe(result.problem, API_BASE);
    slot.hidden = false;
    $("token").setAttribute("aria-invalid", "true");
    $("token").focus();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("account").hidden = false;
  $("account-user").textContent = subjectOf(token);
  renderUsage(result.data);
  announce(`Signed in as ${subjectOf(token)}.`);
  $("brief").focus();
  void search();
}

function signOut(): void {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("account").hidden = true;
  $("signin").hidden = false;
  $<HTMLTextAreaElement>("token").value = "";
  $("token").focus();
  announce("Signed out.");
}

function validation(field: string, msg: string): ApiProblem {
  return {
    code: "VALIDATION_FAILED",
    status: 422,
    message: msg,
    requestId: null,
    details: {},
    fields: [{ loc: [field], msg }],
  };
}

// ---- plan, usage, billing ----------------------------------------------------------------

const PLAN_NAMES: Record<string, string> = { basic: "Basic", standard: "Standard", pro: "Pro" };

async function refreshUsage(): Promise<void> {
  const result = await client.usage();
  if (result.ok) renderUsage(result.data);
}

function meter(label: string, counter: UsageCounter, note: string): HTMLElement {
  const id = `meter-${label.toLowerCase().replace(/\W+/g, "-")}`;
  const { used, limit } = counter;
  const text =
    limit === null ? `${used} used · unlimited` : limit === 0 ? "not in your plan" : `${used} of ${limit}`;
  const resets = counter.resets_at ? ` · resets ${formatTime(counter.resets_at)}` : "";
  return h(
    "div",
    { class: "meter" },
    h("label", { for: id }, label),
    limit && limit > 0
      ? h("meter", {
          id,
          min: 0,
          max: limit,
          value: Math.min(used, limit),
          low: Math.floor(limit * 0.7),
          high: Math.floor(limit * 0.9),
          optimum: 0,
        })
      : h("span", { id, class: "meter-none" }),
    h("span", { class: "meter-text" }, text, resets, note ? ` · ${note}` : ""),
  );
}

function renderUsage(data: Usage): void {
  const plan = data.plan ? (PLAN_NAMES[data.plan] ?? data.plan) : null;
  const effective = data.effective_plan ? (PLAN_NAMES[data.effective_plan] ?? data.effective_plan) : null;
  $("account-plan").textContent = effective ? `${effective} plan` : "No plan";
  const summary = $("plan-summary");
  if (!plan && !effective) {
    summary.textContent = "You have no plan yet: choose one to start creating. Reading your library works without one.";
  } else if (data.boost_expires_at && effective !== plan) {
    summary.textContent = `${effective} (Pro Boost until ${formatTime(data.boost_expires_at)}); your subscription: ${plan ?? "none"}.`;
  } else {
    summary.textContent = `${effective} plan.`;
  }
  const inUse = data.concurrency["in_use"] ?? 0;
  const maxJobs = data.concurrency["limit"] ?? 0;
  if (!effective) {
    $("meters").replaceChildren(h("p", { class: "meter-text" }, "Your usage shows here once you have a plan."));
    renderBilling(data);
    return;
  }
  $("meters").replaceChildren(
    meter("Generations this month", data.generations, ""),
    meter("This hour", data.hourly, ""),
    meter("Full regenerations this month", data.full_regens, ""),
    h("p", { class: "meter-text" }, `Generations running: ${inUse} of ${maxJobs}`),
  );
  renderBilling(data);
  const full = $<HTMLButtonElement>("regen-full-btn");
  const noFull = data.full_regens.limit === 0;
  full.disabled = noFull;
  full.title = noFull ? "Full regeneration is not in your plan" : "";
}

function renderBilling(data: Usage): void {
  const box = $("billing");
  const buy = (product: Product, label: string): HTMLButtonElement => {
    const button = h("button", { type: "button", "data-product": product }, label);
    button.addEventListener("click", () => void checkout(product, button));
    return button;
  };
  if (!data.plan) {
    box.replaceChildren(
      h("p", {}, "Plans (monthly):"),
      h(
        "div",
        { class: "toolbar" },
        buy("basic", "Basic $5.95"),
        buy("standard", "Standard $19.95"),
        buy("pro", "Pro $39.95"),
      ),
    );
    return;
  }
  const portal = h("button", { type: "button" }, "Manage billing");
  portal.addEventListener("click", () => void openPortal(portal));
  box.replaceChildren(
    h("div", { class: "toolbar" }, portal, data.plan !== "pro" ? buy("pro_boost", "Pro Boost: 30 days of Pro, $19.95") : null),
  );
}

async function checkout(product: Product, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  const result = await client.checkout(product);
  button.disabled = false;
  if (result.ok) {
    location.assign(result.data.url);
    return;
  }
  billingProblem(result.problem);
}

async function openPortal(button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  const result = await client.portal();
  button.disabled = false;
  if (result.ok) location.assign(result.data.url);
  else billingProblem(result.problem);
}

function billingProblem(problem: ApiProblem): void {
  $("billing-status").textContent =
    problem.code === "SERVICE_UNAVAILABLE"
      ? `${problem.message} Until it is, an administrator can grant a plan.`
      : describe(problem, API_BASE);
}

// ---- problems next to what caused them ---------------------------------------------------

const waits = new Map<HTMLElement, Countdown>();

/**
 * Shows `problem` for `form`: field errors next to their inputs, a limit as a countdown
 * that keeps `button` disabled until it ends, anything else as text in `box`.
 */
function showProblem(box: HTMLElement, form: HTMLElement | null, problem: ApiProblem, button?: HTMLButtonElement): void {
  const orphans = form ? showFieldErrors(form, problem) : [];
  if (problem.code === "VALIDATION_FAILED" && orphans.length === 0) {
    box.hidden = true;
    announce("Some fields need attention.");
    return;
  }
  if (problem.code === "UNAUTHENTICATED") {
    signOut();
    $("token-error").textContent = describe(problem, API_BASE);
    $("token-error").hidden = false;
    return;
  }
  if (isLimit(problem)) {
    const countdown = waits.get(box) ?? new Countdown();
    waits.set(box, countdown);
    if (button) button.disabled = true;
    const resets = problem.resetsAt ? ` Resets ${formatTime(problem.resetsAt)}.` : "";
    box.className = "problem limit";
    countdown.start(box, problem.retryAfterS, `${describe(problem, API_BASE)}${resets} You can try again in`, () => {
      box.hidden = true;
      if (button) button.disabled = false;
    });
    return;
  }
  box.className = "problem";
  box.replaceChildren(
    h("p", {}, describe(problem, API_BASE)),
    ...orphans.map((text) => h("p", {}, text)),
  );
  box.hidden = false;
  announce(describe(problem, API_BASE));
}

function hideProblem(box: HTMLElement): void {
  waits.get(box)?.stop();
  box.hidden = true;
}

// ---- create, follow, variants ------------------------------------------------------------

const createAction = new UserAction();
let draftId: string | null = null;
let variants: Variant[] = [];
let busy = false;

function numberOf(id: string): number {
  return Number($<HTMLInputElement>(id).value);
}

async function create(event: Event): Promise<void> {
  event.preventDefault();
  if (busy) return;
  const form = $("create-form");
  const button = $<HTMLButtonElement>("create-btn");
  const tone = $<HTMLInputElement>("tone").value.trim();
  const body: CreateRequest = {
    brief: $<HTMLTextAreaElement>("brief").value.trim(),
    platform: $<HTMLSelectElement>("platform").value as Platform,
    variants: numberOf("variants"),
    duration_seconds: numberOf("duration"),
    ...(tone ? { tone } : {}),
  };
  clearFieldErrors(form);
  hideProblem($("create-problem"));
  busy = true;
  button.disabled = true;
  button.textContent = "Creating…";
  const result = await client.create(body, createAction);
  button.textContent = "Create";
  button.disabled = false;
  busy = false;
  if (!result.ok) {
    showProblem($("create-problem"), form, result.problem, button);
    return;
  }
  draftId = result.data.draft_id;
  variants = [];
  renderVariants();
  await follow(result.data.generation_id, result.data.status);
}

function showStep(status: string): void {
  const current = status === "queued" ? 0 : status === "running" ? 1 : 2;
  for (const [i, li] of [...$("progress").children].entries()) {
    li.classList.toggle("complete", i < current || (i === 2 && status === "succeeded"));
    li.classList.toggle("failed", i === 2 && (status === "failed" || status === "cancelled"));
    if (i === current) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }
  const label: Record<string, string> = {
    queued: "Queued: waiting for a writer…",
    running: "Writing your variants…",
    succeeded: "Done.",
    failed: "Failed.",
    cancelled: "Cancelled.",
  };
  const text = label[status] ?? status;
  const el = $("generation-status");
  el.textContent = text;
  el.dataset["status"] = status;
  announce(text);
}

/** The generation the Cancel button stops (null while none is queued or running). */
let following: string | null = null;
let cancelAction = new UserAction();

/** The Cancel button is there while the generation is queued or running. */
function showCancel(generation: { status: string; cancel_requested_at?: string | null }): void {
  const live = generation.status === "queued" || generation.status === "running";
  const button = $("cancel-btn") as HTMLButtonElement;
  if (!live && document.activeElement === button) $("generation-status").focus();
  $("cancel-bar").hidden = !live;
  if (generation.cancel_requested_at) {
    button.disabled = true;
    button.textContent = "Cancelling…";
  }
}

async function cancelGeneration(): Promise<void> {
  const id = following;
  if (id === null) return;
  const button = $("cancel-btn") as HTMLButtonElement;
  // The button is disabled while the cancel is under way: focus goes to the status it
  // describes (read out, and where the next Tab continues), not to the page's start.
  $("generation-status").focus();
  button.disabled = true;
  button.textContent = "Cancelling…";
  hideProblem($("regen-problem"));
  const result = await client.cancelGeneration(id, cancelAction);
  if (following !== id) return;
  if (result.ok) {
    showCancel(result.data);
    if (result.data.status === "cancelled") showStep("cancelled");
    return;
  }
  button.disabled = false;
  button.textContent = "Cancel generation";
  // Already finished: the watch brings its end; anything else is shown.
  if (result.problem.code !== "GENERATION_FINISHED") {
    showProblem($("regen-problem"), null, result.problem, button);
  }
}

/** Shows the 202's own status at once, then every state the generation goes through. */
async function follow(generationId: string, accepted: string): Promise<void> {
  $("generation").hidden = false;
  following = generationId;
  cancelAction = new UserAction();
  const cancel = $("cancel-btn") as HTMLButtonElement;
  cancel.disabled = false;
  cancel.textContent = "Cancel generation";
  showStep(accepted);
  showCancel({ status: accepted });
  $("regen-all").hidden = true;
  const section = $("generation");
  section.setAttribute("aria-busy", "true");
  const result = await client.waitForGeneration(generationId, {
    onUpdate: (g) => {
      showStep(g.status);
      showCancel(g);
    },
  });
  following = null;
  showCancel({ status: "done" });
  section.removeAttribute("aria-busy");
  void refreshUsage();
  if (!result.ok) {
    showProblem($("regen-problem"), null, result.problem);
    return;
  }
  const generation = result.data;
  if (generation.status === "cancelled") {
    $("regen-all").hidden = variants.length === 0;
    return;
  }
  if (generation.status !== "succeeded") {
    const code = generation.error?.code ?? "";
    const why = FAILURES[code] ?? "The writer could not finish.";
    $("generation-status").textContent = `Failed: ${why} The generation was not charged.${code ? ` (${code})` : ""}`;
    $("regen-all").hidden = variants.length === 0;
    return;
  }
  merge(generation);
  $("regen-all").hidden = false;
  renderVariants(generation);
}

/** What a person can do about a failed generation, by its error code. */
const FAILURES: Record<string, string> = {
  PROVIDER_CONTENT_POLICY: "The writer declined this brief (content policy). Rephrase it and try again.",
  PROVIDER_BAD_OUTPUT: "The writer's answer was unusable twice. Try again.",
  PROVIDER_TIMEOUT: "The writer took too long. Try again.",
  PROVIDER_RATE_LIMITED: "The writer is overloaded. Try again in a minute.",
  PROVIDER_UNAVAILABLE: "The writer is unavailable. Try again in a minute.",
};

/** A create or full regeneration replaces every variant; a targeted one replaces its source. */
function merge(generation: Generation): void {
  if (generation.kind !== "regen_targeted") {
    variants = [...generation.variants];
    return;
  }
  for (const fresh of generation.variants) {
    const at = variants.findIndex((v) => v.id === fresh.source_variant_id);
    if (at >= 0) variants[at] = fresh;
    else variants.push(fresh);
  }
}

const FIELDS: VariantField[] = ["hook", "script", "caption", "hashtags"];

function renderVariants(latest?: Generation): void {
  const fresh = new Set(latest?.kind === "regen_targeted" ? latest.variants.map((v) => v.id) : []);
  $("variants-list").replaceChildren(...variants.map((v, i) => variantCard(v, i + 1, fresh.has(v.id))));
}

function variantCard(variant: Variant, n: number, fresh: boolean): HTMLElement {
  const id = `v${n}`;
  const regenButton = h("button", { type: "button" }, "Rewrite selected parts");
  const instructions = h("input", { id: `${id}-instructions`, maxlength: 1000 });
  const boxes = FIELDS.map((field) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", value: field, checked: field === "hook" }),
      ` ${field}`,
    ),
  );
  const regenProblem = h("div", { class: "problem", hidden: true });
  regenButton.addEventListener("click", () => {
    const fields = boxes
      .map((label) => label.querySelector("input"))
      .filter((input): input is HTMLInputElement => input !== null && input.checked)
      .map((input) => input.value as VariantField);
    void regenerateTargeted(variant, fields, instructions.value.trim(), regenButton, regenProblem);
  });

  const titleInput = h("input", { id: `${id}-title`, maxlength: 200, value: variant.hook.slice(0, 80) });
  const tagsInput = h("input", {
    id: `${id}-tags`,
    placeholder: "e.g. water, health",
    "aria-describedby": `${id}-tags-help ${id}-tags-error`,
  });
  const saveForm = h(
    "form",
    { class: "save", novalidate: true },
    h("div", { class: "field" }, h("label", { for: `${id}-title` }, "Title"), titleInput,
      h("p", { id: `${id}-title-error`, class: "field-error", "data-error-for": "title", hidden: true })),
    h("div", { class: "field" }, h("label", { for: `${id}-tags` }, "Tags"), tagsInput,
      h("p", { id: `${id}-tags-help`, class: "help" }, "Lower-case words, digits, - and _, separated by commas."),
      h("p", { id: `${id}-tags-error`, class: "field-error", "data-error-for": "tags", hidden: true })),
    h("button", { type: "submit" }, "Save to library"),
  );
  titleInput.setAttribute("aria-describedby", `${id}-title-error`);
  const saveStatus = h("p", { class: "status", role: "status" });
  const saveAction = new UserAction();
  saveForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void save(variant, titleInput.value.trim(), parseTags(tagsInput.value), saveForm, saveStatus, saveAction);
  });

  return h(
    "li",
    { class: fresh ? "variant fresh" : "variant", "data-variant-id": variant.id },
    h("h3", {}, `Variant ${n}`, fresh ? h("span", { class: "badge" }, "rewritten") : null),
    h("p", { class: "hook" }, variant.hook),
    h("p", {}, variant.script),
    h("p", { class: "caption" }, variant.caption),
    h("p", { class: "hashtags" }, variant.hashtags.map((t) => (t.startsWith("#") ? t : `#${t}`)).join(" ")),
    h(
      "details",
      { class: "regen" },
      h("summary", {}, "Rewrite parts of this variant"),
      h("fieldset", {}, h("legend", {}, "Parts to rewrite"), ...boxes),
      h("label", { for: `${id}-instructions` }, "Instructions (optional)"),
      instructions,
      regenButton,
      regenProblem,
    ),
    saveForm,
    saveStatus,
  );
}

function parseTags(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

const regenActions = new Map<string, UserAction>();

async function regenerateTargeted(
  variant: Variant,
  fields: VariantField[],
  instructions: string,
  button: HTMLButtonElement,
  box: HTMLElement,
): Promise<void> {
  if (!draftId || busy) return;
  if (fields.length === 0) {
    box.replaceChildren(h("p", {}, "Pick at least one part to rewrite."));
    box.hidden = false;
    return;
  }
  const action = regenActions.get(variant.id) ?? new UserAction();
  regenActions.set(variant.id, action);
  await regenerate(
    { draft_id: draftId, mode: "targeted", variant_id: variant.id, fields, ...(instructions ? { instructions } : {}) },
    action,
    button,
    box,
  );
}

const fullAction = new UserAction();

async function regenerateFull(): Promise<void> {
  if (!draftId || busy) return;
  await regenerate(
    { draft_id: draftId, mode: "full", variants: Math.max(1, variants.length) },
    fullAction,
    $<HTMLButtonElement>("regen-full-btn"),
    $("regen-problem"),
  );
}

async function regenerate(
  body: Parameters<ReelClient["regenerate"]>[0],
  action: UserAction,
  button: HTMLButtonElement,
  box: HTMLElement,
): Promise<void> {
  busy = true;
  button.disabled = true;
  hideProblem(box);
  const result = await client.regenerate(body, action);
  busy = false;
  button.disabled = false;
  if (!result.ok) {
    showProblem(box, null, result.problem, button);
    return;
  }
  await follow(result.data.generation_id, result.data.status);
}

async function save(
  variant: Variant,
  title: string,
  tags: string[],
  form: HTMLFormElement,
  status: HTMLElement,
  action: UserAction,
): Promise<void> {
  if (!draftId) return;
  clearFieldErrors(form);
  status.textContent = "Saving…";
  const result = await client.saveAsset(
    { draft_id: draftId, variant_id: variant.id, tags, ...(title ? { title } : {}) },
    action,
  );
  if (!result.ok) {
    status.textContent = "";
    showProblem(status, form, result.problem);
    if (!status.hidden && result.problem.code !== "VALIDATION_FAILED") status.hidden = false;
    return;
  }
  status.hidden = false;
  status.textContent = `Saved to your library as “${result.data.title}”.`;
  void search();
}

// ---- library -----------------------------------------------------------------------------

let cursor: string | null = null;

async function search(event?: Event, more = false): Promise<void> {
  event?.preventDefault();
  const form = $("library-form");
  clearFieldErrors(form);
  const q = $<HTMLInputElement>("search-q").value.trim();
  const tags = parseTags($<HTMLInputElement>("search-tags").value).join(",");
  const deleted = $<HTMLSelectElement>("search-deleted").value === "true";
  const result = await client.listAssets({
    ...(q ? { q } : {}),
    ...(tags ? { tags } : {}),
    ...(deleted ? { deleted: true } : {}),
    ...(more && cursor ? { cursor } : {}),
    limit: 10,
  });
  const status = $("library-status");
  if (!result.ok) {
    showProblem(status, form, result.problem);
    status.hidden = false;
    return;
  }
  cursor = result.data.next_cursor;
  const list = $("assets");
  const items = result.data.items.map((asset) => assetItem(asset, deleted));
  if (more) list.append(...items);
  else list.replaceChildren(...items);
  $("more-btn").hidden = cursor === null;
  const count = list.children.length;
  status.hidden = false;
  status.textContent =
    count === 0
      ? deleted
        ? "Nothing deleted in the last 30 days."
        : q || tags
          ? "Nothing matches."
          : "Your library is empty: save a variant to start it."
      : `${count}${cursor ? "+" : ""} ${deleted ? "deleted " : ""}asset${count === 1 ? "" : "s"}${q || tags ? " found" : ""}.`;
}

function assetItem(asset: Asset, deleted: boolean): HTMLElement {
  const item = h("li", { class: "asset", "data-asset-id": asset.id });
  render();
  return item;

  function render(current: Asset = asset): void {
    asset = current;
    const actions = h("div", { class: "toolbar" });
    if (deleted) {
      const restore = h("button", { type: "button" }, "Restore");
      restore.addEventListener("click", () => void restoreIt(restore));
      actions.append(restore);
    } else {
      const edit = h("button", { type: "button", "aria-label": `Edit “${asset.title}”` }, "Edit");
      const del = h("button", { type: "button", class: "danger", "aria-label": `Delete “${asset.title}”` }, "Delete");
      edit.addEventListener("click", () => void openEditor());
      del.addEventListener("click", () => void deleteIt(del));
      actions.append(edit, del);
    }
    item.replaceChildren(
      h("h3", {}, asset.title || asset.content.hook),
      h("p", { class: "hook" }, asset.content.hook),
      h("p", { class: "tags" }, asset.tags.length ? asset.tags.map((t) => `#${t}`).join(" ") : "no tags"),
      h(
        "p",
        { class: "muted small" },
        `${asset.platform.replace("_", " ")} · ${asset.status} · ${
          deleted && asset.deleted_at ? `deleted ${formatTime(asset.deleted_at)}` : `saved ${formatTime(asset.created_at)}`
        }`,
      ),
      actions,
    );
  }

  async function openEditor(): Promise<void> {
    const fresh = await client.asset(asset.id);
    if (!fresh.ok || !fresh.etag) {
      if (!fresh.ok) showProblem($("library-status"), null, fresh.problem);
      return;
    }
    editor(fresh.data, fresh.etag);
  }

  function editor(current: Asset, etag: string): void {
    const id = `edit-${current.id}`;
    const title = h("input", { id: `${id}-title`, value: current.title, maxlength: 200, "aria-describedby": `${id}-title-error` });
    const tags = h("input", { id: `${id}-tags`, value: current.tags.join(", "), "aria-describedby": `${id}-tags-error` });
    const status = h(
      "select",
      { id: `${id}-status` },
      ...["draft", "ready", "published", "archived"].map((s) => h("option", { value: s, selected: s === current.status }, s)),
    );
    const message = h("p", { class: "status", role: "status" });
    const form = h(
      "form",
      { class: "edit", novalidate: true, "aria-label": `Edit “${current.title}”` },
      h("div", { class: "field" }, h("label", { for: title.id }, "Title"), title,
        h("p", { id: `${id}-title-error`, class: "field-error", "data-error-for": "title", hidden: true })),
      h("div", { class: "field" }, h("label", { for: tags.id }, "Tags"), tags,
        h("p", { id: `${id}-tags-error`, class: "field-error", "data-error-for": "tags", hidden: true })),
      h("div", { class: "field" }, h("label", { for: status.id }, "Status"), status),
      h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Save changes"), h("button", { type: "button", class: "link", "data-cancel": true }, "Cancel")),
      message,
    );
    form.querySelector("[data-cancel]")?.addEventListener("click", () => render());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void (async () => {
        const result = await client.updateAsset(
          current.id,
          { title: title.value.trim(), tags: parseTags(tags.value), status: status.value as Asset["status"] },
          etag,
        );
        if (result.ok) {
          render(result.data);
          announce(`Saved “${result.data.title}”.`);
          item.querySelector("button")?.focus();
          return;
        }
        if (result.problem.code === "PRECONDITION_FAILED") {
          const latest = await client.asset(current.id);
          if (latest.ok && latest.etag) {
            editor(latest.data, latest.etag);
            const note = item.querySelector<HTMLElement>(".edit .status");
            if (note) note.textContent = describe(result.problem, API_BASE);
          }
          return;
        }
        showProblem(message, form, result.problem);
      })();
    });
    item.replaceChildren(form);
    title.focus();
  }

  async function deleteIt(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    const result = await client.deleteAsset(asset.id);
    if (!result.ok) {
      button.disabled = false;
      showProblem($("library-status"), null, result.problem);
      return;
    }
    const undo = h("button", { type: "button" }, "Undo");
    undo.addEventListener("click", () => void restoreIt(undo));
    item.replaceChildren(h("p", {}, `Deleted “${asset.title}”. `, undo));
    undo.focus();
    announce(`Deleted ${asset.title}. Undo is available for 30 days.`);
  }

  async function restoreIt(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    const result = await client.restoreAsset(asset.id);
    if (!result.ok) {
      button.disabled = false;
      showProblem($("library-status"), null, result.problem);
      return;
    }
    if (deleted) {
      item.replaceChildren(h("p", {}, `Restored “${result.data.title}”.`));
    } else {
      render(result.data);
      item.querySelector("button")?.focus();
    }
    announce(`Restored ${result.data.title}.`);
  }
}

// ---- wiring ------------------------------------------------------------------------------

function start(): void {
  $("api-base").textContent = API_BASE;
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void signIn($<HTMLTextAreaElement>("token").value);
  });
  $("signout-btn").addEventListener("click", signOut);
  $("create-form").addEventListener("submit", (event) => void create(event));
  $("regen-full-btn").addEventListener("click", () => void regenerateFull());
  $("cancel-btn").addEventListener("click", () => void cancelGeneration());
  $("library-form").addEventListener("submit", (event) => void search(event));
  $("more-btn").addEventListener("click", () => void search(undefined, true));
  const billing = params.get("billing");
  if (billing) {
    $("billing-status").textContent =
      billing === "success" ? "Payment received: your plan updates in a moment." : "Checkout cancelled: nothing was charged.";
  }
  // A development link may carry the token in the fragment (never sent to a server).
  const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fragment) history.replaceState(null, "", location.pathname + location.search);
  const initial = fragment ?? token;
  if (initial) {
    $<HTMLTextAreaElement>("token").value = initial;
    void signIn(initial);
  }
}

start();
