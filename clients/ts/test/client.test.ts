/** The hand-written layer of the client against a local fake of the API (node --test). */

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";

import {
  type ApiProblem,
  type Generation,
  ReelClient,
  type RetryEvent,
  UserAction,
  messagesFor,
  RECONNECTS,
  parseRetryAfter,
} from "../src/index.js";
import { FakeApi, error } from "./fake-server.js";
import { MiniEventSource } from "./mini-event-source.js";

/** An `EventSource` driven by the test: events on demand, failed reconnects (CONNECTING). */
class ScriptedEventSource {
  readyState = 1;
  onerror: ((event: Event) => void) | null = null;
  private readonly listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();

  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.readyState = 2;
  }

  emit(name: string, data: unknown): void {
    this.readyState = 1;
    const event = new MessageEvent<string>(name, { data: JSON.stringify(data) });
    for (const listener of this.listeners.get(name) ?? []) listener(event);
  }

  /** The connection dropped and the browser's retry failed: it stays CONNECTING. */
  reconnectFails(): void {
    this.readyState = 0;
    this.onerror?.(new Event("error"));
  }
}

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(ok(), "condition not reached");
}

const DRAFT = "6f1c2e0a-1111-4222-8333-944455556666";
const GEN = "7a1c2e0a-1111-4222-8333-944455556666";

function generation(status: string): Generation {
  return {
    id: GEN,
    draft_id: DRAFT,
    kind: "create",
    status: status as Generation["status"],
    created_at: "2026-12-06T10:00:00Z",
    started_at: null,
    completed_at: null,
    cancel_requested_at: null,
    error: null,
    variants: [],
  };
}

let api: FakeApi;
let waits: number[];
let retries: RetryEvent[];

function client(extra: Partial<ConstructorParameters<typeof ReelClient>[0]> = {}): ReelClient {
  return new ReelClient({
    baseUrl: api.url + "/",
    getToken: () => "tok-123",
    sleep: async (ms) => {
      waits.push(ms);
    },
    random: () => 0.5,
    onRetry: (event) => retries.push(event),
    polling: {
      sleep: async (ms) => {
        waits.push(ms);
      },
    },
    ...extra,
  });
}

function problem<T>(result: { ok: true; data: T } | { ok: false; problem: ApiProblem }): ApiProblem {
  assert.equal(result.ok, false, "expected a problem");
  return (result as { problem: ApiProblem }).problem;
}

const CREATE = { brief: "three reasons to drink water", platform: "tiktok" as const };

describe("ReelClient", () => {
  before(async () => {
    api = await new FakeApi().start();
  });
  after(async () => {
    await api.stop();
  });
  beforeEach(async () => {
    await api.stop();
    api = await new FakeApi().start();
    waits = [];
    retries = [];
  });

  it("sends the bearer token and reads usage from its own URL when given", async () => {
    const usageApi = await new FakeApi().start();
    usageApi.on("GET /v1/usage", { status: 200, body: { plan: "standard" } });
    try {
      const result = await client({ usageBaseUrl: usageApi.url }).usage();
      assert.ok(result.ok);
      assert.equal(usageApi.seen[0]?.headers["authorization"], "Bearer tok-123");
      assert.equal(api.seen.length, 0);
    } finally {
      await usageApi.stop();
    }
  });

  it("retries a 503 after Retry-After with the same Idempotency-Key", async () => {
    api.on(
      "POST /v1/create",
      { status: 503, body: error("PROVIDER_BUSY", "busy"), headers: { "Retry-After": "2" } },
      { status: 202, body: { draft_id: DRAFT, generation_id: GEN, status: "queued" } },
    );
    const result = await client().create(CREATE);
    assert.ok(result.ok);
    const [first, second] = api.requests("POST /v1/create");
    assert.ok(first?.headers["idempotency-key"]);
    assert.equal(second?.headers["idempotency-key"], first?.headers["idempotency-key"]);
    assert.equal(second?.body, first?.body);
    assert.deepEqual(waits, [2000]);
    assert.equal(retries[0]?.code, "PROVIDER_BUSY");
    assert.equal(retries[0]?.status, 503);
  });

  it("waits a short 429 (cooldown) out, and hands a long one back as a LimitProblem", async () => {
    api.on(
      "POST /v1/regenerate",
      { status: 429, body: error("COOLDOWN_ACTIVE", "wait"), headers: { "Retry-After": "7" } },
      {
        status: 429,
        body: error("HOURLY_LIMIT_EXCEEDED", "hour", {
          limit: 40,
          used: 40,
          resets_at: "2026-12-06T11:00:00Z",
        }),
        headers: { "Retry-After": "1800" },
      },
    );
    const body = { draft_id: DRAFT, mode: "full" as const };
    const found = problem(await client().regenerate(body));
    assert.equal(api.requests("POST /v1/regenerate").length, 2);
    assert.deepEqual(waits, [7000]);
    assert.equal(found.code, "HOURLY_LIMIT_EXCEEDED");
    if (found.code !== "HOURLY_LIMIT_EXCEEDED") return;
    assert.equal(found.retryAfterS, 1800);
    assert.equal(found.limit, 40);
    assert.equal(found.used, 40);
    assert.equal(found.resetsAt, "2026-12-06T11:00:00Z");
  });

  it("backs off with full jitter when a 503 has no Retry-After, then gives up", async () => {
    api.on("GET /v1/usage", { status: 503, body: error("SERVICE_UNAVAILABLE", "down") });
    const found = problem(await client().usage());
    assert.equal(found.code, "SERVICE_UNAVAILABLE");
    assert.equal(api.seen.length, 4); // maxAttempts
    assert.deepEqual(waits, [125, 250, 500]); // random 0.5 × 250 · 2^n
  });

  it("never retries a POST that carries no key", async () => {
    api.on("POST /v1/billing/checkout", {
      status: 503,
      body: error("SERVICE_UNAVAILABLE", "no stripe"),
      headers: { "Retry-After": "1" },
    });
    const found = problem(await client().checkout("standard"));
    assert.equal(found.code, "SERVICE_UNAVAILABLE");
    assert.equal(api.seen.length, 1);
  });

  it("retries a network failure of a GET, then reports NETWORK", async () => {
    const dead = new ReelClient({
      baseUrl: "http://127.0.0.1:9", // discard port: nothing listens
      getToken: () => null,
      sleep: async (ms) => {
        waits.push(ms);
      },
      random: () => 0,
    });
    const found = problem(await dead.usage());
    assert.equal(found.code, "NETWORK");
    assert.equal(waits.length, 3);
  });

  it("reuses one key per user action until the outcome is known", async () => {
    api.on(
      "POST /v1/library/assets",
      { status: 500, body: error("INTERNAL", "boom") },
      { status: 201, body: { id: "a1" } },
      { status: 201, body: { id: "a2" } },
    );
    const action = new UserAction();
    const body = { draft_id: DRAFT, variant_id: GEN, tags: ["water"] };
    const c = client();
    assert.equal(problem(await c.saveAsset(body, action)).code, "INTERNAL");
    assert.ok(action.pendingKey, "a 5xx keeps the key");
    assert.ok((await c.saveAsset(body, action)).ok);
    assert.equal(action.pendingKey, null, "a success ends the action");
    await c.saveAsset(body, action);
    const keys = api.requests("POST /v1/library/assets").map((s) => s.headers["idempotency-key"]);
    assert.equal(keys[0], keys[1], "the retry after a 5xx reuses the key");
    assert.notEqual(keys[2], keys[1], "the next action gets a new key");
  });

  it("gives a new key when the body changes", () => {
    const action = new UserAction();
    const a = action.keyFor({ brief: "a" });
    assert.equal(action.keyFor({ brief: "a" }), a);
    assert.notEqual(action.keyFor({ brief: "b" }), a);
  });

  it("maps a 422 to field errors", async () => {
    api.on("POST /v1/create", {
      status: 422,
      body: error("VALIDATION_FAILED", "invalid", {
        fields: [
          { loc: ["brief"], msg: "String should have at least 1 character" },
          { loc: ["tags", 2], msg: "bad tag" },
        ],
      }),
    });
    const found = problem(await client().create({ ...CREATE, brief: "" }));
    assert.equal(found.code, "VALIDATION_FAILED");
    assert.deepEqual(messagesFor(found, "brief"), ["String should have at least 1 character"]);
    assert.deepEqual(messagesFor(found, "tags"), ["bad tag"]);
    assert.equal(found.code === "VALIDATION_FAILED" && found.requestId, "req-body");
  });

  it("keeps unknown codes and non-API bodies apart", async () => {
    api.on("GET /v1/usage", { status: 418, body: error("TEAPOT", "new") });
    const unknown = problem(await client().usage());
    assert.equal(unknown.code, "UNKNOWN");
    assert.equal(unknown.code === "UNKNOWN" && unknown.serverCode, "TEAPOT");
    api.on("GET /v1/drafts/x", { status: 502, raw: "<html>Bad gateway</html>" });
    const gateway = problem(await client().draft("x"));
    assert.equal(gateway.code, "BAD_RESPONSE");
    assert.equal(gateway.status, 502);
  });

  it("follows a generation through every state until terminal", async () => {
    api.on(
      `GET /v1/generations/${GEN}`,
      { status: 200, body: generation("queued") },
      { status: 200, body: generation("running") },
      { status: 200, body: generation("running") },
      { status: 200, body: generation("succeeded") },
    );
    const seen: string[] = [];
    const result = await client().waitForGeneration(GEN, { onUpdate: (g) => seen.push(g.status) });
    assert.ok(result.ok);
    assert.equal(result.data.status, "succeeded");
    assert.deepEqual(seen, ["queued", "running", "running", "succeeded"]);
    assert.deepEqual(waits, [300, 450, 675]);
    assert.equal(api.seen.length, 4);
  });

  it("treats cancelled as terminal", async () => {
    api.on(`GET /v1/generations/${GEN}`, { status: 200, body: generation("cancelled") });
    const result = await client().waitForGeneration(GEN);
    assert.ok(result.ok);
    assert.equal(api.seen.length, 1);
  });

  it("stops following on a problem", async () => {
    api.on(`GET /v1/generations/${GEN}`, { status: 404, body: error("NOT_FOUND", "gone") });
    assert.equal(problem(await client().waitForGeneration(GEN)).code, "NOT_FOUND");
  });

  it("sends If-Match on an edit and reports a stale one", async () => {
    api.on("PATCH /v1/library/assets/a1", {
      status: 412,
      body: error("PRECONDITION_FAILED", "stale"),
    });
    const found = problem(await client().updateAsset("a1", { title: "New" }, '"3"'));
    assert.equal(found.code, "PRECONDITION_FAILED");
    assert.equal(api.seen[0]?.headers["if-match"], '"3"');
    assert.equal(api.seen[0]?.body, JSON.stringify({ title: "New" }));
  });

  it("exposes the ETag of a read", async () => {
    api.on("GET /v1/library/assets/a1", { status: 200, body: { id: "a1" }, headers: { ETag: '"7"' } });
    const result = await client().asset("a1");
    assert.ok(result.ok);
    assert.equal(result.etag, '"7"');
  });

  it("retries a restore (idempotent by definition) and a delete", async () => {
    api.on("POST /v1/library/assets/a1/restore", {
      status: 503,
      body: error("SERVICE_UNAVAILABLE", "x"),
      headers: { "Retry-After": "1" },
    }, { status: 200, body: { id: "a1" } });
    api.on("DELETE /v1/library/assets/a1", { status: 503, body: error("SERVICE_UNAVAILABLE", "x") }, { status: 204 });
    assert.ok((await client().restoreAsset("a1")).ok);
    const deleted = await client().deleteAsset("a1");
    assert.ok(deleted.ok);
    assert.equal(deleted.data, null);
    assert.equal(api.seen.length, 4);
  });

  it("cancels with an Idempotency-Key, reusing it while the outcome is unknown", async () => {
    const cancelled = { ...generation("cancelled"), error: { code: "CANCELLED", message: "x" } };
    api.on(
      `POST /v1/generations/${GEN}/cancel`,
      { status: 500, body: error("INTERNAL", "boom") },
      { status: 200, body: cancelled },
    );
    const action = new UserAction();
    const c = client({ policy: { maxAttempts: 1 } });
    const first = await c.cancelGeneration(GEN, action);
    assert.equal(problem(first).status, 500);
    const second = await c.cancelGeneration(GEN, action);
    assert.ok(second.ok);
    assert.equal(second.data.status, "cancelled");
    const [a, b] = api.requests(`POST /v1/generations/${GEN}/cancel`);
    assert.ok(a?.headers["idempotency-key"]);
    assert.equal(b?.headers["idempotency-key"], a?.headers["idempotency-key"]);
    assert.equal(action.pendingKey, null);
  });

  it("reports GENERATION_FINISHED when the generation had already ended", async () => {
    api.on(`POST /v1/generations/${GEN}/cancel`, {
      status: 409,
      body: error("GENERATION_FINISHED", "done", { status: "succeeded" }),
    });
    const result = await client().cancelGeneration(GEN);
    assert.equal(problem(result).code, "GENERATION_FINISHED");
  });

  it("follows the event stream: partial events over one read, the terminal one whole", async () => {
    const done = { ...generation("succeeded"), completed_at: "2026-12-06T10:00:09Z" };
    api.on(`GET /v1/generations/${GEN}`, { status: 200, body: generation("queued") });
    api.on(`GET /v1/generations/${GEN}/events`, {
      status: 200,
      events: [
        { id: 1, event: "queued", data: { id: GEN, status: "queued", created_at: "2026-12-06T10:00:00Z" } },
        { id: 2, event: "running", data: { id: GEN, status: "running", started_at: "2026-12-06T10:00:01Z" } },
        { id: 3, event: "succeeded", data: done },
      ],
    });
    const opened: string[] = [];
    const c = client({
      eventStream: { open: (url) => (opened.push(url), new MiniEventSource(url)) },
    });
    const seen: Generation[] = [];
    const result = await c.waitForGeneration(GEN, { onUpdate: (g) => seen.push(g) });
    assert.ok(result.ok);
    assert.deepEqual(result.data, done);
    assert.deepEqual(seen.map((g) => g.status), ["queued", "running", "succeeded"]);
    assert.equal(seen[1]?.started_at, "2026-12-06T10:00:01Z");
    assert.equal(seen[1]?.draft_id, DRAFT);
    assert.equal(opened[0], `${api.url}/v1/generations/${GEN}/events?access_token=tok-123`);
    assert.equal(api.requests(`GET /v1/generations/${GEN}`).length, 1);
  });

  it("ends on a cancelled event", async () => {
    const cancelled = { ...generation("cancelled"), error: { code: "CANCELLED", message: "x" } };
    api.on(`GET /v1/generations/${GEN}/events`, {
      status: 200,
      events: [{ id: 3, event: "cancelled", data: cancelled }],
    });
    const c = client({ eventStream: { open: (url) => new MiniEventSource(url) } });
    const result = await c.waitForGeneration(GEN);
    assert.ok(result.ok);
    assert.equal(result.data.status, "cancelled");
    assert.equal(api.requests(`GET /v1/generations/${GEN}`).length, 0);
  });

  it("falls back to polling when the stream fails before its first event", async () => {
    api.on(`GET /v1/generations/${GEN}/events`, { status: 404, body: error("NOT_FOUND", "x") });
    api.on(
      `GET /v1/generations/${GEN}`,
      { status: 200, body: generation("running") },
      { status: 200, body: generation("succeeded") },
    );
    const c = client({ eventStream: { open: (url) => new MiniEventSource(url) } });
    const seen: string[] = [];
    const result = await c.waitForGeneration(GEN, { onUpdate: (g) => seen.push(g.status) });
    assert.ok(result.ok);
    assert.deepEqual(seen, ["running", "succeeded"]);
    assert.equal(api.requests(`GET /v1/generations/${GEN}/events`).length, 1);
  });

  it("falls back to polling when the stream closes before the terminal event", async () => {
    api.on(`GET /v1/generations/${GEN}/events`, {
      status: 200,
      events: [{ id: 1, event: "queued", data: { id: GEN, status: "queued", created_at: "x" } }],
    });
    api.on(
      `GET /v1/generations/${GEN}`,
      { status: 200, body: generation("queued") },
      { status: 200, body: generation("failed") },
    );
    const c = client({ eventStream: { open: (url) => new MiniEventSource(url) } });
    const seen: string[] = [];
    const result = await c.waitForGeneration(GEN, { onUpdate: (g) => seen.push(g.status) });
    assert.ok(result.ok);
    assert.equal(result.data.status, "failed");
    assert.deepEqual(seen, ["queued", "failed"]);
  });

  it("gives the stream up for polling when the browser's reconnects keep failing", { timeout: 5000 }, async () => {
    api.on(
      `GET /v1/generations/${GEN}`,
      { status: 200, body: generation("queued") },
      { status: 200, body: generation("succeeded") },
    );
    const streams: ScriptedEventSource[] = [];
    const c = client({ eventStream: { open: () => (streams.push(new ScriptedEventSource()), streams[0]!) } });
    const seen: string[] = [];
    const waiting = c.waitForGeneration(GEN, { onUpdate: (g) => seen.push(g.status) });
    const stream = streams[0]!;
    stream.emit("queued", { id: GEN, status: "queued", created_at: "x" });
    await until(() => seen.length === 1);
    for (let i = 1; i < RECONNECTS; i++) stream.reconnectFails();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(api.requests(`GET /v1/generations/${GEN}`).length, 1, "still waiting on the stream");
    stream.emit("running", { id: GEN, status: "running", started_at: "y" });
    for (let i = 1; i < RECONNECTS; i++) stream.reconnectFails();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(api.requests(`GET /v1/generations/${GEN}`).length, 1, "an event resets the count");
    stream.reconnectFails();
    const result = await waiting;
    assert.ok(result.ok);
    assert.equal(result.data.status, "succeeded");
    assert.deepEqual(seen, ["queued", "running", "succeeded"]);
    assert.equal(stream.readyState, 2, "the stream is closed when given up");
    assert.equal(streams.length, 1);
  });

  it("polls where there is no EventSource", async () => {
    api.on(`GET /v1/generations/${GEN}`, { status: 200, body: generation("succeeded") });
    const result = await client({ eventStream: { open: null } }).waitForGeneration(GEN);
    assert.ok(result.ok);
    assert.equal(api.requests(`GET /v1/generations/${GEN}/events`).length, 0);
    assert.equal(api.requests(`GET /v1/generations/${GEN}`).length, 1);
  });

  it("ends a wait at once when aborted, sending nothing more", async () => {
    api.on("GET /v1/usage", {
      status: 503,
      body: error("SERVICE_UNAVAILABLE", "x"),
      headers: { "Retry-After": "5" },
    });
    const real = new ReelClient({ baseUrl: api.url, getToken: () => null });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(real.usage(controller.signal), { name: "AbortError" });
    assert.ok(Date.now() - started < 2000);
    assert.equal(api.seen.length, 1);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("12"), 12);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("soon"), null);
    const now = Date.parse("2026-12-06T10:00:00Z");
    assert.equal(parseRetryAfter("Sun, 06 Dec 2026 10:00:30 GMT", now), 30);
    assert.equal(parseRetryAfter("Sun, 06 Dec 2026 09:00:00 GMT", now), 0);
  });
});
