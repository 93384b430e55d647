/** Recording what a server's handlers see, and waiting for it in tests. */

import { serve, type ServeOptions, type Server, type ServerWebSocket } from "../../mod.ts";

/** A queue that handlers `push` to and tests `take` from, waiting a bounded time. */
export class Inbox<T> {
  #items: T[] = [];
  #wake: (() => void) | null = null;

  /** Adds an item and wakes a waiting `take`. */
  push(item: T): void {
    this.#items.push(item);
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Items pushed and not taken yet. */
  get items(): readonly T[] {
    return this.#items;
  }

  /** Removes and returns the first item that `match`es, waiting up to `ms` for one. */
  async take(match: (item: T) => boolean = () => true, ms = 5000, what = "an event"): Promise<T> {
    const deadline = Date.now() + ms;
    while (true) {
      const index = this.#items.findIndex(match);
      if (index >= 0) return this.#items.splice(index, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        const previous = this.#wake;
        this.#wake = () => {
          previous?.();
          resolve();
        };
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

/** Resolves as `promise` does, or rejects after `ms` naming `what` it waited for. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One handler call on a {@linkcode recordingServer}; `path` is the socket's URL path. */
export type ServerEvent =
  | { type: "open"; path: string; ws: ServerWebSocket }
  | { type: "message"; path: string; data: string | Uint8Array }
  | { type: "close"; path: string; code: number; reason: string }
  | { type: "error"; path: string; error: unknown }
  | { type: "ping"; path: string; data: Uint8Array }
  | { type: "pong"; path: string; data: Uint8Array }
  | { type: "drain"; path: string };

/** A server whose handler calls are all recorded. */
export interface RecordingServer {
  server: Server;
  port: number;
  events: Inbox<ServerEvent>;
  /** Waits for (and removes) the next event of `type` on the socket opened at `path`. */
  next<K extends ServerEvent["type"]>(
    type: K,
    path: string,
    ms?: number,
  ): Promise<Extract<ServerEvent, { type: K }>>;
}

/**
 * A server on a free port that records every handler call, keyed by the socket's URL path (so
 * each test opens its sockets at paths of its own). The handlers in `options.websocket` run after
 * the recording; without a `message` handler, messages are echoed.
 */
export function recordingServer(options: ServeOptions = {}): RecordingServer {
  const events = new Inbox<ServerEvent>();
  const user = options.websocket ?? {};
  const pathOf = (ws: ServerWebSocket) => new URL(ws.url).pathname;
  const server = serve({
    port: 0,
    ...options,
    websocket: {
      open(ws) {
        events.push({ type: "open", path: pathOf(ws), ws });
        return user.open?.(ws);
      },
      message(ws, data) {
        // A binary message is a view that is only valid during the call: keep a copy.
        events.push({
          type: "message",
          path: pathOf(ws),
          data: typeof data === "string" ? data : data.slice(),
        });
        if (user.message === undefined) ws.send(data);
        else return user.message(ws, data);
      },
      close(ws, code, reason) {
        events.push({ type: "close", path: pathOf(ws), code, reason });
        return user.close?.(ws, code, reason);
      },
      error(ws, error) {
        events.push({ type: "error", path: pathOf(ws), error });
        return user.error?.(ws, error);
      },
      ping(ws, data) {
        events.push({ type: "ping", path: pathOf(ws), data });
        return user.ping?.(ws, data);
      },
      pong(ws, data) {
        events.push({ type: "pong", path: pathOf(ws), data });
        return user.pong?.(ws, data);
      },
      drain(ws) {
        events.push({ type: "drain", path: pathOf(ws) });
        return user.drain?.(ws);
      },
    },
  });
  return {
    server,
    port: server.port,
    events,
    next(type, path, ms = 5000) {
      return events.take(
        (event) => event.type === type && event.path === path,
        ms,
        `a "${type}" event on ${path}`,
      ) as Promise<Extract<ServerEvent, { type: typeof type }>>;
    },
  };
}

/** `length` bytes of a pattern that differs per `seed`, so that misplaced bytes show. */
export function patternBytes(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return out;
}

/** The first index where `a` and `b` differ (a length mismatch counts), or -1 when equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}
