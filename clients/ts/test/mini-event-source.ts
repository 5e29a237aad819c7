/**
 * A small `EventSource` over `fetch` for the tests (Node 20 has no global one): it reads
 * `text/event-stream` frames and dispatches them by event name. A non-200 answer, another
 * content type, or the end of the stream closes it (`readyState` 2) and fires `onerror`;
 * it never reconnects.
 */

import type { EventSourceLike } from "../src/index.js";

export class MiniEventSource implements EventSourceLike {
  readyState = 0;
  onerror: ((event: Event) => void) | null = null;
  private readonly listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();
  private readonly controller = new AbortController();

  constructor(readonly url: string) {
    void this.run();
  }

  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.readyState = 2;
    this.controller.abort();
  }

  private async run(): Promise<void> {
    try {
      const response = await fetch(this.url, { signal: this.controller.signal });
      const type = response.headers.get("Content-Type") ?? "";
      if (response.status !== 200 || !type.startsWith("text/event-stream") || !response.body) {
        return this.fail();
      }
      this.readyState = 1;
      const decoder = new TextDecoder();
      let buffer = "";
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      if (this.readyState === 2) return;
    }
    this.fail();
  }

  private dispatch(block: string): void {
    let name = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length === 0 || this.readyState === 2) return;
    const event = new MessageEvent<string>(name, { data: data.join("\n") });
    for (const listener of this.listeners.get(name) ?? []) listener(event);
  }

  private fail(): void {
    if (this.readyState === 2) return;
    this.readyState = 2;
    this.onerror?.(new Event("error"));
  }
}
