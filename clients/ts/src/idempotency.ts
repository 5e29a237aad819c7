/**
 * One Idempotency-Key per user action.
 *
 * A "user action" is one intent: pressing Create for this brief. Every attempt at it
 * (the client's own retries, and the user pressing the button again after a network
 * failure or a 5xx, when nobody knows whether the first attempt landed) carries the
 * same key, so the server replays the first answer instead of charging twice. A new
 * body, or a definite answer (a success, a 4xx), starts a new action.
 */

import type { ApiProblem } from "./errors.js";

/** A fresh key: a v4 UUID (1–255 visible ASCII, as the API requires). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

/** Whether the server may have acted: only then must the next attempt reuse the key. */
export function outcomeUnknown(problem: ApiProblem): boolean {
  return (
    problem.code === "NETWORK" ||
    problem.code === "IDEMPOTENCY_IN_PROGRESS" ||
    (problem.status !== null && problem.status >= 500)
  );
}

export class UserAction {
  private key: string | null = null;
  private body = "";

  /** The key for sending `body`: the current one while the body is unchanged. */
  keyFor(body: unknown): string {
    const text = JSON.stringify(body);
    if (this.key === null || text !== this.body) {
      this.key = newIdempotencyKey();
      this.body = text;
    }
    return this.key;
  }

  /** Record the attempt's outcome: keep the key only while the outcome is unknown. */
  settle(problem: ApiProblem | null): void {
    if (problem === null || !outcomeUnknown(problem)) this.key = null;
  }

  /** The key an unsettled attempt used (null once settled): for display and tests. */
  get pendingKey(): string | null {
    return this.key;
  }
}
