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
import { type Result, failure } from "./result.js";
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
