/**
 * A `fetch` that retries what is safe to retry.
 *
 * - 429 and 503 wait for `Retry-After` (whole seconds or an HTTP date) when the server sent
 *   one, else full-jitter exponential backoff; a `Retry-After` longer than
 *   `maxRetryAfterS` (a monthly quota, an hourly burst) is handed back to the caller at
 *   once: nobody wants a button that silently waits an hour.
 * - A fetch that threw (offline, connection reset) is retried with backoff.
 * - Only requests that cannot do a thing twice are retried: GET/HEAD/OPTIONS/PUT/DELETE,
 *   and any request carrying an `Idempotency-Key` (the same key on every attempt, so the
 *   server replays instead of charging again) or an `If-Match`. `retrySafe` adds more.
 * - An aborted request is never retried; its wait ends at once.
 */

import { parseRetryAfter } from "./errors.js";

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** The longest `Retry-After` waited for automatically. */
  readonly maxRetryAfterS: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 250,
  maxDelayMs: 8000,
  maxRetryAfterS: 30,
};

/** Told before each wait, so a UI can show a countdown ("retrying in 8 s"). */
export interface RetryEvent {
  /** The attempt that just failed (1 = the first). */
  readonly attempt: number;
  readonly delayMs: number;
  /** The HTTP status, or null when the fetch threw. */
  readonly status: number | null;
  /** The API's error code when the body had one (`COOLDOWN_ACTIVE`, `PROVIDER_BUSY`). */
  readonly code: string | null;
  readonly method: string;
  readonly url: string;
}

export interface RetryOptions {
  readonly policy?: Partial<RetryPolicy>;
  readonly onRetry?: (event: RetryEvent) => void;
  readonly sleep?: Sleep;
  /** [0, 1): the jitter source (injectable for tests). */
  readonly random?: () => number;
  /** More requests that are safe to repeat (e.g. a restore, idempotent by definition). */
  readonly retrySafe?: (request: Request) => boolean;
}

const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** A sleep that ends early, rejecting with the signal's reason, when `signal` aborts. */
export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Full jitter: uniform in [0, min(max, base * 2^(attempt-1))). */
export function backoffMs(attempt: number, policy: RetryPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

export function isRetrySafe(request: Request): boolean {
  return (
    SAFE_METHODS.has(request.method.toUpperCase()) ||
    request.headers.has("Idempotency-Key") ||
    request.headers.has("If-Match")
  );
}

async function errorCode(response: Response): Promise<string | null> {
  try {
    const body: unknown = await response.clone().json();
    if (typeof body === "object" && body !== null && "error" in body) {
      const error: unknown = body.error;
      if (typeof error === "object" && error !== null && "code" in error) {
        return typeof error.code === "string" ? error.code : null;
      }
    }
  } catch {
    // not JSON: no code to report
  }
  return null;
}

type Fetch = (request: Request) => Promise<Response>;

/** `inner` wrapped with the retry rules above. */
export function retryingFetch(inner: Fetch, options: RetryOptions = {}): Fetch {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...options.policy };
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  return async (request: Request): Promise<Response> => {
    const safe = isRetrySafe(request) || (options.retrySafe?.(request) ?? false);
    for (let attempt = 1; ; attempt += 1) {
      const last = !safe || attempt >= policy.maxAttempts;
      let response: Response;
      try {
        // A clone per attempt: a body can be read once, the original stays unread.
        response = await inner(request.clone());
      } catch (cause) {
        if (last || request.signal.aborted) throw cause;
        const delayMs = backoffMs(attempt, policy, random);
        options.onRetry?.({ ...describe(request), attempt, delayMs, status: null, code: null });
        await wait(delayMs, request.signal);
        continue;
      }
      if (last || (response.status !== 429 && response.status !== 503)) return response;
      const retryAfterS = parseRetryAfter(response.headers.get("Retry-After"));
      if (retryAfterS !== null && retryAfterS > policy.maxRetryAfterS) return response;
      const delayMs =
        retryAfterS !== null ? retryAfterS * 1000 : backoffMs(attempt, policy, random);
      const code = await errorCode(response);
      await response.body?.cancel();
      options.onRetry?.({ ...describe(request), attempt, delayMs, status: response.status, code });
      await wait(delayMs, request.signal);
    }
  };
}

function describe(request: Request): { method: string; url: string } {
  return { method: request.method, url: request.url };
}
