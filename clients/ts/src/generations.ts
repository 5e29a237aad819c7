/**
 * Following a generation until it ends.
 *
 * A `GenerationSource` yields the generation each time it may have changed, ending after
 * a terminal status or a problem. `PollingSource` asks `GET /v1/generations/{id}` with a
 * growing interval; an event-stream source (`GET /v1/generations/{id}/events`, when the
 * server has it) implements the same interface, so `waitForGeneration` and every UI
 * built on it stay as they are.
 */

import type { components } from "./schema.js";
import { type Result, failure, success } from "./result.js";
import { type Sleep, sleep as realSleep } from "./retry.js";

export type Generation = components["schemas"]["GenerationResponse"];
/** The statuses the document names, plus `cancelled` (announced; harmless before it exists). */
export type GenerationStatus = Generation["status"] | "cancelled";

const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

export function isTerminal(status: string): boolean {
  return TERMINAL.has(status);
}

export interface GenerationSource {
  updates(id: string, signal?: AbortSignal): AsyncIterable<Result<Generation>>;
}

export interface PollingOptions {
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly factor?: number;
  readonly sleep?: Sleep;
}

export class PollingSource implements GenerationSource {
  private readonly first: number;
  private readonly max: number;
  private readonly factor: number;
  private readonly sleep: Sleep;

  constructor(
    private readonly fetchOnce: (id: string, signal?: AbortSignal) => Promise<Result<Generation>>,
    options: PollingOptions = {},
  ) {
    this.first = options.firstDelayMs ?? 300;
    this.max = options.maxDelayMs ?? 2000;
    this.factor = options.factor ?? 1.5;
    this.sleep = options.sleep ?? realSleep;
  }

  async *updates(id: string, signal?: AbortSignal): AsyncGenerator<Result<Generation>> {
    let delayMs = this.first;
    for (;;) {
      const result = await this.fetchOnce(id, signal);
      yield result;
      if (!result.ok || isTerminal(result.data.status)) return;
      await this.sleep(delayMs, signal);
      delayMs = Math.min(this.max, delayMs * this.factor);
    }
  }
}

/**
 * The generation once terminal (or the problem that stopped the watch); `onUpdate` sees
 * every state on the way (queued, running, …) for a live display.
 */
export async function waitForGeneration(
  source: GenerationSource,
  id: string,
  options: { onUpdate?: (generation: Generation) => void; signal?: AbortSignal } = {},
): Promise<Result<Generation>> {
  let last: Result<Generation> | null = null;
  for await (const result of source.updates(id, options.signal)) {
    last = result;
    if (!result.ok) return result;
    options.onUpdate?.(result.data);
    if (isTerminal(result.data.status)) return result;
  }
  return (
    last ??
    failure({ code: "BAD_RESPONSE", status: null, message: "no update", requestId: null }, null)
  );
}

// ---- the event stream ----------------------------------------------------------------

/** What `EventStreamSource` needs of an `EventSource` (the browser's, or a test's). */
export interface EventSourceLike {
  readonly readyState: number;
  onerror: ((event: Event) => void) | null;
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  close(): void;
}

export type OpenEventSource = (url: string) => EventSourceLike;

/** The global `EventSource` as an `OpenEventSource`, or null where there is none (Node 20). */
export function globalEventSource(): OpenEventSource | null {
  const Ctor = (globalThis as { EventSource?: new (url: string) => EventSourceLike }).EventSource;
  return Ctor ? (url) => new Ctor(url) : null;
}

const CLOSED = 2;
const STREAM_EVENTS = ["queued", "running", "succeeded", "failed", "cancelled"] as const;

type Arrival =
  | { readonly kind: "event"; readonly name: string; readonly data: string }
  | { readonly kind: "error" }
  | { readonly kind: "abort" };

/** Items pushed by callbacks, taken in order by an async reader. */
class Inbox<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
    this.wake = null;
  }

  async take(): Promise<T> {
    while (this.items.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.items.shift() as T;
  }
}

export interface EventStreamOptions {
  /** The stream's URL for a generation (`…/v1/generations/{id}/events?access_token=…`). */
  readonly urlFor: (id: string) => string;
  /** One `GET /v1/generations/{id}`: the whole generation a partial event is laid over. */
  readonly fetchOnce: (id: string, signal?: AbortSignal) => Promise<Result<Generation>>;
  /** Followed when there is no `EventSource`, or the stream fails. */
  readonly fallback: GenerationSource;
  /** Defaults to the global `EventSource` (none: the fallback is used). */
  readonly open?: OpenEventSource | null;
}

/**
 * Follows `GET /v1/generations/{id}/events`. `queued` and `running` carry only the id,
 * status and a time, so they are laid over the generation as last read (one GET the first
 * time); the terminal event carries the whole generation. An error before the first event
 * (no stream there: a 404, CORS, a gateway that buffers) or a stream the browser gave up
 * on (`readyState` CLOSED) hands over to the fallback; an error while the browser
 * reconnects by itself (with `Last-Event-ID`) is waited out, up to `RECONNECTS` errors in
 * a row with no event between them (a server that stays down): then the fallback too.
 */
/** Reconnect errors in a row, with no event between them, before the stream is given up. */
export const RECONNECTS = 3;

export class EventStreamSource implements GenerationSource {
  constructor(private readonly options: EventStreamOptions) {}

  async *updates(id: string, signal?: AbortSignal): AsyncGenerator<Result<Generation>> {
    const open = this.options.open === undefined ? globalEventSource() : this.options.open;
    if (open === null) {
      yield* this.options.fallback.updates(id, signal);
      return;
    }
    const inbox = new Inbox<Arrival>();
    let seen = false;
    let last: Generation | null = null;
    const stream = open(this.options.urlFor(id));
    let reconnects = 0;
    for (const name of STREAM_EVENTS) {
      stream.addEventListener(name, (event) => {
        reconnects = 0;
        inbox.push({ kind: "event", name, data: event.data });
      });
    }
    stream.onerror = () => {
      if (stream.readyState !== CLOSED && seen && ++reconnects < RECONNECTS) return;
      inbox.push({ kind: "error" });
    };
    const onAbort = (): void => inbox.push({ kind: "abort" });
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const arrival = await inbox.take();
        if (arrival.kind === "abort") return;
        if (arrival.kind === "error") break;
        seen = true;
        const data = parse(arrival.data);
        if (data === null) break;
        if (isTerminal(arrival.name)) {
          yield successOf(data as unknown as Generation);
          return;
        }
        if (last === null) {
          const base = await this.options.fetchOnce(id, signal);
          if (!base.ok) {
            yield base;
            return;
          }
          last = base.data;
          if (isTerminal(last.status)) {
            yield base;
            return;
          }
        }
        last = { ...last, ...(data as unknown as Partial<Generation>), status: arrival.name as Generation["status"] };
        yield successOf(last);
      }
    } finally {
      stream.close();
      signal?.removeEventListener("abort", onAbort);
    }
    yield* this.options.fallback.updates(id, signal);
  }
}

function parse(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A stream event as a `Result`: no HTTP response of its own, so a synthetic 200. */
function successOf(generation: Generation): Result<Generation> {
  return success(generation, new Response(null, { status: 200 }));
}
