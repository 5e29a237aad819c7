/** What every call returns: the typed data, or the typed problem; never a throw. */

import type { ApiProblem } from "./errors.js";

export interface Success<T> {
  readonly ok: true;
  readonly data: T;
  readonly response: Response;
  /** The response's `ETag` (a resource to edit with `If-Match`), else null. */
  readonly etag: string | null;
}

export interface Failure {
  readonly ok: false;
  readonly problem: ApiProblem;
  /** Null when no HTTP answer arrived. */
  readonly response: Response | null;
}

export type Result<T> = Success<T> | Failure;

export function success<T>(data: T, response: Response): Success<T> {
  return { ok: true, data, response, etag: response.headers.get("ETag") };
}

export function failure(problem: ApiProblem, response: Response | null): Failure {
  return { ok: false, problem, response };
}
