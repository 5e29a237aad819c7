// Reel Content example frontend: plain JS, no build step. Every call carries the bearer
// token; reads of response headers only work because the API exposes them through CORS
// (Access-Control-Expose-Headers), which is what this page demonstrates.
"use strict";

const params = new URLSearchParams(location.search);
const config = Object.assign({}, window.REEL_CONFIG || {});
if (params.get("api")) config.apiBase = params.get("api");
if (params.get("usage")) config.usageFunctionUrl = params.get("usage");
const API = (config.apiBase || "").replace(/\/$/, "");
const USAGE_URL = (config.usageFunctionUrl || API).replace(/\/$/, "");
const LIMIT_HEADERS = [
  "X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
  "Location",
];

const state = { token: "", draftId: "", generationId: "", variants: [] };
const $ = (id) => document.getElementById(id);

function setStatus(id, text, ok = true) {
  const el = $(id);
  el.textContent = text;
  el.className = "status " + (ok ? "ok" : "bad");
}

function showHeaders(id, response) {
  const dl = $(id);
  dl.replaceChildren();
  for (const name of LIMIT_HEADERS) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = response.headers.get(name) ?? "—";
    dd.dataset.header = name.toLowerCase();
    dl.append(dt, dd);
  }
}

async function call(method, path, body, extraHeaders = {}, base = API) {
  const headers = { Authorization: `Bearer ${state.token}`, ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { response, json: text ? JSON.parse(text) : null };
}

function errorText(json) {
  return json && json.error ? `${json.error.code}: ${json.error.message}` : "";
}

async function signIn() {
  state.token = $("token").value.trim();
  const { response, json } = await call("GET", "/v1/usage");
  if (response.ok) {
    setStatus("signin-status", `signed in: plan ${json.plan ?? "none"}`);
  } else {
    setStatus("signin-status", `sign-in failed: HTTP ${response.status} ${errorText(json)}`, false);
  }
}

async function create() {
  const body = {
    brief: $("brief").value,
    platform: $("platform").value,
    variants: Number($("variants").value),
  };
  const key = crypto.randomUUID();
  const { response, json } = await call("POST", "/v1/create", body, { "Idempotency-Key": key });
  showHeaders("create-headers", response);
  if (response.status !== 202) {
    setStatus("create-status", `HTTP ${response.status} ${errorText(json)}`, false);
    return;
  }
  state.draftId = json.draft_id;
  state.generationId = json.generation_id;
  setStatus("create-status", `202 accepted: generation ${json.generation_id} (key ${key})`);
  await poll(json.generation_id);
}

async function poll(generationId) {
  setStatus("generation-status", "queued…");
  for (;;) {
    const { response, json } = await call("GET", `/v1/generations/${generationId}`);
    if (!response.ok) {
      setStatus("generation-status", `HTTP ${response.status} ${errorText(json)}`, false);
      return null;
    }
    if (json.status === "succeeded" || json.status === "failed" || json.status === "cancelled") {
      setStatus("generation-status", `${json.status}`, json.status === "succeeded");
      if (json.status === "succeeded" && json.kind === "create") renderVariants(json.variants);
      return json;
    }
    setStatus("generation-status", `${json.status}…`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function renderVariants(variants) {
  state.variants = variants;
  const list = $("variants-list");
  list.replaceChildren();
  for (const v of variants) {
    const li = document.createElement("li");
    li.className = "variant";
    const hook = document.createElement("strong");
    hook.textContent = v.hook;
    const script = document.createElement("p");
    script.textContent = v.script;
    const meta = document.createElement("p");
    meta.className = "muted";
    meta.textContent = `${v.caption} ${v.hashtags.join(" ")}`;
    const save = document.createElement("button");
    save.textContent = "Save to library";
    save.className = "save-btn";
    save.addEventListener("click", () => saveVariant(v.id));
    li.append(hook, script, meta, save);
    list.append(li);
  }
}

async function saveVariant(variantId) {
  const body = { draft_id: state.draftId, variant_id: variantId, tags: ["rehearsal"] };
  const key = crypto.randomUUID();
  const { response, json } = await call("POST", "/v1/library/assets", body, {
    "Idempotency-Key": key,
  });
  if (response.status === 201) {
    setStatus("save-status", `saved asset ${json.id}`);
  } else {
    setStatus("save-status", `save failed: HTTP ${response.status} ${errorText(json)}`, false);
  }
}

async function regenerateTwice() {
  const variant = state.variants[0];
  const body = { draft_id: state.draftId, mode: "targeted", variant_id: variant.id, fields: ["hook"] };
  const first = await call("POST", "/v1/regenerate", body);
  if (first.response.status !== 202) {
    setStatus("limit-status", `first: HTTP ${first.response.status} ${errorText(first.json)}`, false);
    return;
  }
  await poll(first.json.generation_id);
  const second = await call("POST", "/v1/regenerate", body);
  showHeaders("limit-headers", second.response);
  const ok = second.response.status === 429;
  setStatus(
    "limit-status",
    `first 202, second HTTP ${second.response.status} ${errorText(second.json)}`,
    ok,
  );
}

async function search() {
  const q = encodeURIComponent($("search-q").value);
  const { response, json } = await call("GET", `/v1/library/assets?q=${q}`);
  const list = $("search-results");
  list.replaceChildren();
  if (!response.ok) {
    setStatus("save-status", `search failed: HTTP ${response.status} ${errorText(json)}`, false);
    return;
  }
  for (const asset of json.items) {
    const li = document.createElement("li");
    li.className = "asset";
    li.textContent = `${asset.title || asset.content.hook} [${asset.tags.join(", ")}]`;
    list.append(li);
  }
}

async function usage() {
  const { response, json } = await call("GET", "/v1/usage", undefined, {}, USAGE_URL);
  if (!response.ok) {
    setStatus("usage-status", `HTTP ${response.status} ${errorText(json)}`, false);
    return;
  }
  const g = json.generations;
  setStatus(
    "usage-status",
    `plan ${json.plan}: ${g.used} of ${g.limit} generations used this month ` +
      `(from ${USAGE_URL}, request ${response.headers.get("X-Request-Id")})`,
  );
}

function guard(fn, statusId) {
  return () => fn().catch((err) => setStatus(statusId, `error: ${err}`, false));
}

$("api-base").textContent = API || "(not configured: add ?api=https://…)";
$("signin-btn").addEventListener("click", guard(signIn, "signin-status"));
$("create-btn").addEventListener("click", guard(create, "create-status"));
$("limit-btn").addEventListener("click", guard(regenerateTwice, "limit-status"));
$("search-btn").addEventListener("click", guard(search, "save-status"));
$("usage-btn").addEventListener("click", guard(usage, "usage-status"));
