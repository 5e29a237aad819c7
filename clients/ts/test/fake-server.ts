/** A local HTTP server answering scripted responses, recording every request it gets. */

import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface Reply {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** Send this text as is instead of JSON. */
  readonly raw?: string;
  /** Server-sent events: each frame written (and flushed) on its own, `text/event-stream`. */
  readonly events?: readonly SseFrame[];
}

export interface SseFrame {
  readonly id?: number;
  readonly event: string;
  readonly data: unknown;
}

/** One frame as the API writes it (shared/api/sse.py): id, event, one data line. */
export function sseFrame(frame: SseFrame): string {
  const id = frame.id === undefined ? "" : `id: ${frame.id}\n`;
  return `${id}event: ${frame.event}\ndata: ${JSON.stringify(frame.data)}\n\n`;
}

export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

export class FakeApi {
  readonly seen: Seen[] = [];
  private readonly script = new Map<string, Reply[]>();
  private server: Server | null = null;
  url = "";

  /** Queue replies for `METHOD /path` (the path without its query); the last one repeats. */
  on(route: string, ...replies: Reply[]): this {
    this.script.set(route, [...(this.script.get(route) ?? []), ...replies]);
    return this;
  }

  requests(route: string): Seen[] {
    return this.seen.filter((s) => `${s.method} ${s.path.split("?")[0]}` === route);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.answer(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? "/";
    const seen = {
      method: req.method ?? "GET",
      path,
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
    };
    this.seen.push(seen);
    const queue = this.script.get(`${seen.method} ${path.split("?")[0]}`);
    const reply = (queue && queue.length > 1 ? queue.shift() : queue?.[0]) ?? {
      status: 404,
      body: error("NOT_FOUND", "no script"),
    };
    if (reply.events !== undefined) {
      res.writeHead(reply.status, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
      res.write(": keep-alive\n\n");
      for (const frame of reply.events) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        res.write(sseFrame(frame));
      }
      res.end();
      return;
    }
    const text = reply.raw ?? (reply.body === undefined ? "" : JSON.stringify(reply.body));
    res.writeHead(reply.status, {
      ...(reply.raw === undefined && text ? { "Content-Type": "application/json" } : {}),
      "X-Request-Id": `req-${this.seen.length}`,
      ...reply.headers,
    });
    res.end(text);
  }
}

/** The API's error body. */
export function error(code: string, message: string, details: object = {}): object {
  return { error: { code, message, request_id: "req-body", details } };
}
