/**
 * `ReelClient`: the typed calls of `openapi-fetch` over the generated `paths`, plus what
 * the generator cannot know — bearer auth, Idempotency-Key per user action, retries that
 * honour `Retry-After`, following a generation, and one typed problem union.
 *
 * Anything not wrapped here is one typed call away: `client.raw.GET("/v1/drafts", …)`.
 */

import createClient, { type Client } from "openapi-fetch";

import { networkProblem, problemFromResponse } from "./errors.js";
import {
  EventStreamSource,
  type Generation,
  type GenerationSource,
  type OpenEventSource,
  PollingSource,
  type PollingOptions,
  waitForGeneration,
} from "./generations.js";
import { UserAction, newIdempotencyKey } from "./idempotency.js";
import { type Result, failure, success } from "./result.js";
import { type RetryOptions, retryingFetch } from "./retry.js";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type Accepted = Schemas["AcceptedResponse"];
export type Asset = Schemas["AssetResponse"];
export type AssetList = Schemas["AssetListResponse"];
export type AssetPatch = Schemas["AssetPatchRequest"];
export type CreateAsset = Schemas["CreateAssetRequest"];
export type CreateRequest = Schemas["CreateRequest"];
export type Draft = Schemas["DraftResponse"];
export type Platform = Schemas["Platform"];
export type Product = Schemas["Product"];
export type RegenerateRequest = Schemas["RegenerateRequest"];
export type Usage = Schemas["UsageResponse"];
export type UsageCounter = Schemas["UsageCounter"];
export type Variant = Schemas["VariantOut"];
export type VariantField = Schemas["VariantField"];
export type AssetQuery = NonNullable<paths["/v1/library/assets"]["get"]["parameters"]["query"]>;

export interface ReelClientOptions extends RetryOptions {
  /** The API's origin (the gateway), e.g. `https://api.example.com`. */
  readonly baseUrl: string;
  /** The current bearer token (an ID token); null sends no Authorization. */
  readonly getToken: () => string | null;
  /** Where `GET /v1/usage` goes when it is not behind `baseUrl` (a function's own URL). */
  readonly usageBaseUrl?: string;
  readonly fetch?: (request: Request) => Promise<Response>;
  readonly polling?: PollingOptions;
  /** How generations are followed; polling unless given, or unless `eventStream`. */
  readonly generationSource?: GenerationSource;
  /**
   * Follow generations on `GET /v1/generations/{id}/events` (falls back to polling where
   * there is no `EventSource` or the stream fails). `baseUrl` is where the stream is
   * served when not behind the API's `baseUrl` (the generations function's own URL);
   * `open` replaces the global `EventSource` (tests, or a polyfill).
   */
  readonly eventStream?: { readonly baseUrl?: string; readonly open?: OpenEventSource | null };
}

interface FetchOutcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Posts that repeat harmlessly without a key (a restore returns a live asset as is). */
const RESTORE_PATH = /\/v1\/library\/assets\/[^/]+\/restore$/;

function isAbort(cause: unknown): boolean {
  return cause instanceof DOMException && cause.name === "AbortError";
}

/** The call's typed result; a thrown fetch becomes a NETWORK problem (an abort rethrows). */
async function settle<T>(run: () => Promise<FetchOutcome<T>>): Promise<Result<T>> {
  let outcome: FetchOutcome<T>;
  try {
    outcome = await run();
  } catch (cause) {
    if (isAbort(cause)) throw cause;
    return failure(networkProblem(cause), null);
  }
  const { data, error, response } = outcome;
  if (!response.ok) return failure(problemFromResponse(response, error), response);
  return success(data as T, response);
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** The event stream's URL; the token rides in the query (`EventSource` sends no headers). */
export function eventsUrl(base: string, id: string, token: string | null): string {
  const url = `${trimSlash(base)}/v1/generations/${encodeURIComponent(id)}/events`;
  return token ? `${url}?access_token=${encodeURIComponent(token)}` : url;
}

export class ReelClient {
  /** The generated client, for any endpoint not wrapped below (fully typed). */
  readonly raw: Client<paths>;
  private readonly usageApi: Client<paths>;
  private readonly source: GenerationSource;

  constructor(options: ReelClientOptions) {
    const inner = options.fetch ?? ((request: Request) => globalThis.fetch(request));
    const fetch = retryingFetch(inner, {
      ...options,
      retrySafe: (request) =>
        RESTORE_PATH.test(new URL(request.url).pathname) || (options.retrySafe?.(request) ?? false),
    });
    const auth = {
      onRequest({ request }: { request: Request }): Request {
        const token = options.getToken();
        if (token) request.headers.set("Authorization", `Bearer ${token}`);
        return request;
      },
    };
    this.raw = createClient<paths>({ baseUrl: trimSlash(options.baseUrl), fetch });
    this.raw.use(auth);
    this.usageApi = createClient<paths>({
      baseUrl: trimSlash(options.usageBaseUrl ?? options.baseUrl),
      fetch,
    });
    this.usageApi.use(auth);
    const fetchOnce = (id: string, signal?: AbortSignal): Promise<Result<Generation>> =>
      this.generation(id, signal);
    const polling = new PollingSource(fetchOnce, options.polling);
    const stream = options.eventStream;
    this.source =
      options.generationSource ??
      (stream
        ? new EventStreamSource({
            urlFor: (id) => eventsUrl(stream.baseUrl ?? options.baseUrl, id, options.getToken()),
            fetchOnce,
            fallback: polling,
            ...(stream.open === undefined ? {} : { open: stream.open }),
          })
        : polling);
  }

  /** A new user action (one Idempotency-Key for all its attempts). */
  static action(): UserAction {
    return new UserAction();
  }

  // ---- account -------------------------------------------------------------------------

  usage(signal?: AbortSignal): Promise<Result<Usage>> {
    return settle(() => this.usageApi.GET("/v1/usage", { signal }));
  }

  checkout(product: Product): Promise<Result<Schemas["UrlResponse"]>> {
    return settle(() => this.raw.POST("/v1/billing/checkout", { body: { product } }));
  }

  portal(): Promise<Result<Schemas["UrlResponse"]>> {
    return settle(() => this.raw.POST("/v1/billing/portal"));
  }

  // ---- generations ---------------------------------------------------------------------

  /** POST /v1/create; with `action`, every attempt of that action sends one key. */
  async create(body: CreateRequest, action?: UserAction): Promise<Result<Accepted>> {
    const key = action ? action.keyFor(body) : newIdempotencyKey();
    const result = await settle(() =>
      this.raw.POST("/v1/create", { body, params: { header: { "Idempotency-Key": key } } }),
    );
    action?.settle(result.ok ? null : result.problem);
    return result;
  }

  /** POST /v1/regenerate (targeted: one variant's fields; full: every variant). */
  async regenerate(body: RegenerateRequest, action?: UserAction): Promise<Result<Accepted>> {
    const key = action ? action.keyFor(body) : newIdempotencyKey();
    const result = await settle(() =>
      this.raw.POST("/v1/regenerate", {
        // openapi-fetch's Writable<> does not distribute over the targeted | full union
        // the document states (oneOf on `mode`); `body` is already checked against it.
        body: body as never,
        params: { header: { "Idempotency-Key": key } },
      }),
    );
    action?.settle(result.ok ? null : result.problem);
    return result;
  }

  generation(id: string, signal?: AbortSignal): Promise<Result<Generation>> {
    return settle(() =>
      this.raw.GET("/v1/generations/{id}", { params: { path: { id } }, signal }),
    );
  }

  /**
   * POST /v1/generations/{id}/cancel: the generation (`cancelled` at once when it was
   * queued; `running` with `cancel_requested_at` when the worker will stop it), or
   * GENERATION_FINISHED when it had already ended. One key per `action`, as for create.
   */
  async cancelGeneration(id: string, action?: UserAction): Promise<Result<Generation>> {
    const key = action ? action.keyFor({ cancel: id }) : newIdempotencyKey();
    const result = await settle(() =>
      this.raw.POST("/v1/generations/{id}/cancel", {
        params: { path: { id }, header: { "Idempotency-Key": key } },
      }),
    );
    action?.settle(result.ok ? null : result.problem);
    return result;
  }

  /** Follows the generation until succeeded / failed (/ cancelled), reporting each state. */
  waitForGeneration(
    id: string,
    options: { onUpdate?: (generation: Generation) => void; signal?: AbortSignal } = {},
  ): Promise<Result<Generation>> {
    return waitForGeneration(this.source, id, options);
  }

  draft(id: string): Promise<Result<Draft>> {
    return settle(() => this.raw.GET("/v1/drafts/{id}", { params: { path: { id } } }));
  }

  // ---- library -------------------------------------------------------------------------

  listAssets(query: AssetQuery = {}, signal?: AbortSignal): Promise<Result<AssetList>> {
    return settle(() => this.raw.GET("/v1/library/assets", { params: { query }, signal }));
  }

  asset(id: string): Promise<Result<Asset>> {
    return settle(() => this.raw.GET("/v1/library/assets/{id}", { params: { path: { id } } }));
  }

  async saveAsset(body: CreateAsset, action?: UserAction): Promise<Result<Asset>> {
    const key = action ? action.keyFor(body) : newIdempotencyKey();
    const result = await settle(() =>
      this.raw.POST("/v1/library/assets", {
        body: body as never, // a oneOf (from a variant | raw content): as for regenerate

        params: { header: { "Idempotency-Key": key } },
      }),
    );
    action?.settle(result.ok ? null : result.problem);
    return result;
  }

  /** PATCH with `If-Match: etag`: a PRECONDITION_FAILED problem when someone edited first. */
  updateAsset(id: string, patch: AssetPatch, etag: string): Promise<Result<Asset>> {
    return settle(() =>
      this.raw.PATCH("/v1/library/assets/{id}", {
        params: { path: { id } },
        body: patch,
        headers: { "If-Match": etag },
      }),
    );
  }

  deleteAsset(id: string): Promise<Result<null>> {
    return settle(async () => {
      const { response, error } = await this.raw.DELETE("/v1/library/assets/{id}", {
        params: { path: { id } },
      });
      return { data: null, error, response };
    });
  }

  restoreAsset(id: string): Promise<Result<Asset>> {
    return settle(() =>
      this.raw.POST("/v1/library/assets/{id}/restore", { params: { path: { id } } }),
    );
  }
}
