/**
 * Every failure of a call, as ONE union discriminated by `code`.
 *
 *     ApiProblem
 *     ├── ValidationProblem   VALIDATION_FAILED: `fields` (loc + msg), ready to show next to inputs
 *     ├── LimitProblem        429 codes and 503 PROVIDER_BUSY / SERVICE_UNAVAILABLE:
 *     │                       `retryAfterS` (always a number), `limit`, `used`, `resetsAt`
 *     ├── CodedProblem        every other code the API documents
 *     ├── UnknownCodeProblem  a code this client does not know yet (a newer server)
 *     └── TransportProblem    NETWORK (fetch threw: offline, DNS, CORS) / BAD_RESPONSE (not
 *                             the API's JSON error shape, e.g. a proxy's HTML page)
 *
 * The code list mirrors the server's (a Python test fails when the server names a code
 * that is missing here).
 */

/** 400 */
export const BAD_REQUEST_CODES = ["INVALID_JSON", "INVALID_CURSOR", "INVALID_REQUEST_ID"] as const;
/** 429: `details` has `limit`, `used`, `resets_at` where they apply; `Retry-After` always. */
export const LIMIT_CODES = [
  "MONTHLY_QUOTA_EXCEEDED",
  "HOURLY_LIMIT_EXCEEDED",
  "CONCURRENCY_LIMIT",
  "COOLDOWN_ACTIVE",
  "FULL_REGEN_CAP_EXCEEDED",
] as const;
/** 503: a dependency or the AI provider is busy; `Retry-After` always. */
export const UNAVAILABLE_CODES = ["SERVICE_UNAVAILABLE", "PROVIDER_BUSY"] as const;
/** Everything else the API answers with. */
export const OTHER_CODES = [
  "UNAUTHENTICATED",
  "SUBSCRIPTION_REQUIRED",
  "FORBIDDEN",
  "PLAN_FEATURE_UNAVAILABLE",
  "NOT_FOUND",
  "METHOD_NOT_ALLOWED",
  "IDEMPOTENCY_IN_PROGRESS",
  "GENERATION_IN_PROGRESS",
  "SUBSCRIPTION_EXISTS",
  "PRECONDITION_FAILED",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "IDEMPOTENCY_KEY_REUSED",
  "INVALID_SIGNATURE",
  "INVALID_EVENT",
  "INTERNAL",
] as const;

export type BadRequestCode = (typeof BAD_REQUEST_CODES)[number];
export type LimitCode = (typeof LIMIT_CODES)[number] | (typeof UNAVAILABLE_CODES)[number];
export type OtherCode = BadRequestCode | (typeof OTHER_CODES)[number];
export type ErrorCode = "VALIDATION_FAILED" | LimitCode | OtherCode;

/** What every problem the server answered carries. */
interface ServerProblem {
  readonly status: number;
  readonly message: string;
  /** The X-Request-Id: quote it to support. */
  readonly requestId: string | null;
  readonly details: Readonly<Record<string, unknown>>;
}

/** One field error: `loc` is the path inside the body (`["brief"]`, `["content", "hook"]`). */
export interface FieldError {
  readonly loc: readonly (string | number)[];
  readonly msg: string;
}

export interface ValidationProblem extends ServerProblem {
  readonly code: "VALIDATION_FAILED";
  readonly fields: readonly FieldError[];
}

export interface LimitProblem extends ServerProblem {
  readonly code: LimitCode;
  /** Seconds until trying again can succeed (from `Retry-After`; 1 when absent). */
  readonly retryAfterS: number;
  readonly limit: number | null;
  readonly used: number | null;
  /** RFC 3339 UTC, when the counter that refused resets. */
  readonly resetsAt: string | null;
}

export interface CodedProblem extends ServerProblem {
  readonly code: OtherCode;
}

export interface UnknownCodeProblem extends ServerProblem {
  readonly code: "UNKNOWN";
  /** The code as the server spelled it. */
  readonly serverCode: string;
}

export interface TransportProblem {
  readonly code: "NETWORK" | "BAD_RESPONSE";
  readonly status: number | null;
  readonly message: string;
  readonly requestId: string | null;
}

export type ApiProblem =
  | ValidationProblem
  | LimitProblem
  | CodedProblem
  | UnknownCodeProblem
  | TransportProblem;

const LIMITS: ReadonlySet<string> = new Set([...LIMIT_CODES, ...UNAVAILABLE_CODES]);
const OTHERS: ReadonlySet<string> = new Set([...BAD_REQUEST_CODES, ...OTHER_CODES]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function fieldErrors(details: Record<string, unknown>): FieldError[] {
  const fields = details["fields"];
  if (!Array.isArray(fields)) return [];
  return fields.filter(isRecord).map((f) => ({
    loc: Array.isArray(f["loc"])
      ? f["loc"].filter((p): p is string | number => typeof p === "string" || typeof p === "number")
      : [],
    msg: typeof f["msg"] === "string" ? f["msg"] : "invalid",
  }));
}

/**
 * `Retry-After` in whole seconds: delta-seconds or an HTTP date (RFC 9110); null when
 * absent or unreadable. `nowMs` is injectable for tests.
 */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** The typed problem of a non-2xx `response` whose body was parsed as `body` (or not). */
export function problemFromResponse(response: Response, body: unknown): ApiProblem {
  const requestId = response.headers.get("X-Request-Id");
  const error = isRecord(body) ? body["error"] : undefined;
  if (!isRecord(error) || typeof error["code"] !== "string") {
    return {
      code: "BAD_RESPONSE",
      status: response.status,
      message: `HTTP ${response.status} without the API's error body`,
      requestId,
    };
  }
  const details = isRecord(error["details"]) ? error["details"] : {};
  const base = {
    status: response.status,
    message: typeof error["message"] === "string" ? error["message"] : "",
    requestId: typeof error["request_id"] === "string" ? error["request_id"] : requestId,
    details,
  };
  const code = error["code"];
  if (code === "VALIDATION_FAILED") {
    return { ...base, code, fields: fieldErrors(details) };
  }
  if (LIMITS.has(code)) {
    return {
      ...base,
      code: code as LimitCode,
      retryAfterS: parseRetryAfter(response.headers.get("Retry-After")) ?? 1,
      limit: numberOrNull(details["limit"]),
      used: numberOrNull(details["used"]),
      resetsAt: typeof details["resets_at"] === "string" ? details["resets_at"] : null,
    };
  }
  if (OTHERS.has(code)) return { ...base, code: code as OtherCode };
  return { ...base, code: "UNKNOWN", serverCode: code };
}

/** The problem of a fetch that threw (no HTTP answer at all). */
export function networkProblem(cause: unknown): TransportProblem {
  const message = cause instanceof Error ? cause.message : String(cause);
  return { code: "NETWORK", status: null, message, requestId: null };
}

/** True for the problems that carry a wait (429s and 503s). */
export function isLimit(problem: ApiProblem): problem is LimitProblem {
  return LIMITS.has(problem.code);
}

/** The last name in a `loc` (`["tags", 3]` → `"tags"`, `["content", "hook"]` → `"hook"`). */
export function fieldName(error: FieldError): string {
  for (let i = error.loc.length - 1; i >= 0; i -= 1) {
    const part = error.loc[i];
    if (typeof part === "string") return part;
  }
  return "";
}

/** The messages of the field errors about `field` (`"brief"`, `"hook"`, `"tags"`). */
export function messagesFor(problem: ApiProblem, field: string): string[] {
  if (problem.code !== "VALIDATION_FAILED") return [];
  return problem.fields.filter((f) => fieldName(f) === field).map((f) => f.msg);
}
