/**
 * Hono's WebSocket helper on Wisp, used as with `hono/bun`: serve the app with
 * `serve({ fetch: app.fetch, websocket })` and route upgrades with
 * `app.get("/ws", auth, upgradeWebSocket((c) => ({ onOpen, onMessage, onClose, onError })))`, so
 * that the app's own middleware (auth, cookies, routing) sees the upgrade request first.
 *
 * Hono's contract is implemented structurally: this module imports nothing from `hono`. Hono
 * makes the second argument of `app.fetch(request, env)` its `c.env`; Wisp's `fetch` gets its
 * {@linkcode FetchInfo} there, whose `upgrade` takes the request over.
 *
 * @example A room per route parameter
 * ```ts
 * import { Hono } from "hono";
 * import { serve } from "../../mod.ts"; // or "@wisp/wisp"
 * import { upgradeWebSocket, websocket } from "./hono.ts"; // or "@wisp/wisp/hono"
 *
 * const app = new Hono();
 * app.get("/ws/:room", upgradeWebSocket((c) => ({
 *   onOpen: (_event, ws) => ws.raw.subscribe(c.req.param("room")),
 *   onMessage: (event, ws) => void ws.raw.publish(c.req.param("room"), String(event.data)),
 * })));
 * const server = serve({ port: 0, fetch: app.fetch, websocket });
 * await server.close();
 * ```
 * @module
 */

import type { ConnectionInfo, FetchInfo, Upgrader } from "../options.ts";
import type { ServerWebSocket, WebSocketHandler } from "../server_websocket.ts";
import { exactArrayBuffer } from "./bytes.ts";

export type { FetchInfo };

/**
 * What the helper reads of Hono's `Context`: the web `Request` Wisp handed to `fetch`, and `env`,
 * the second argument of `app.fetch` (Wisp's {@linkcode FetchInfo}).
 */
export interface HonoContext {
  /** Hono's request; `raw` is the web `Request`. */
  readonly req: { readonly raw: Request };
  /** The second argument of `app.fetch`: Wisp's fetch info, which carries `upgrade`. */
  readonly env: unknown;
}

/** How a binary message reaches `onMessage`: an `ArrayBuffer` of exactly its bytes, or a `Blob`. */
export type WSBinaryType = "arraybuffer" | "blob";

/**
 * The handlers of one WebSocket route, as Hono names them. Each gets the event and the socket's
 * {@linkcode WSContext}; each may be async. A handler that throws or rejects calls `onError`
 * (an `Event` of type `"error"` with the failure as its `error`) and the socket stays open, as
 * with `hono/bun`; without `onError`, Wisp's rule applies: the socket is closed with 1011 and the
 * failure reported to the server's `onEvent`.
 */
export interface WSEvents {
  /** The socket is open. */
  onOpen?(event: Event, ws: WSContext): void | Promise<void>;
  /** A message: `event.data` is a string for text, an `ArrayBuffer` (or `Blob`) for binary. */
  onMessage?(event: MessageEvent<string | ArrayBuffer | Blob>, ws: WSContext): void | Promise<void>;
  /** The socket closed: `event.code` and `event.reason` as Wisp's `close` handler has them. */
  onClose?(event: CloseEvent, ws: WSContext): void | Promise<void>;
  /** Another handler failed: `(event as Event & { error: unknown }).error` is what it threw. */
  onError?(event: Event, ws: WSContext): void | Promise<void>;
}

/** The `data` of a socket upgraded by {@linkcode upgradeWebSocket}. */
export interface HonoSocketData {
  /** The route's handlers. */
  readonly events: WSEvents;
  /** The URL of the upgrade request. */
  readonly url: string;
  /** The socket's context, made when it opens. */
  context: WSContext | null;
}

/** The socket a Hono handler gets, as Hono's `WSContext` has it; `raw` is the Wisp socket. */
export class WSContext {
  /** The Wisp socket: topics (`subscribe`, `publish`), `ping`, `pause`, `bufferedAmount`, … */
  readonly raw: ServerWebSocket<HonoSocketData>;
  /** The URL of the upgrade request. */
  readonly url: URL;
  /** The agreed subprotocol, or `""`. */
  readonly protocol: string;
  /** How `onMessage` gets binary messages. Default "arraybuffer". */
  binaryType: WSBinaryType = "arraybuffer";

  /** Made by {@linkcode websocket} when the socket opens. */
  constructor(raw: ServerWebSocket<HonoSocketData>) {
    this.raw = raw;
    this.url = new URL(raw.data.url);
    this.protocol = raw.protocol;
  }

  /** 1 while open, 2 while closing, 3 once closed. */
  get readyState(): 0 | 1 | 2 | 3 {
    return this.raw.readyState as 0 | 1 | 2 | 3;
  }

  /**
   * Sends a string as text, bytes as binary; `compress: false` skips permessage-deflate for this
   * message. See `ServerWebSocket.send` (`raw.send` also tells whether it was queued).
   */
  send(data: string | ArrayBuffer | Uint8Array, options?: { compress?: boolean }): void {
    this.raw.send(data, options);
  }

  /** Starts the closing handshake (code 1000 by default); see `ServerWebSocket.close`. */
  close(code?: number, reason?: string): void {
    this.raw.close(code, reason);
  }
}

/** Node 20 has no `CloseEvent`: an `Event` with its three fields stands in for it there. */
class CloseEventStandIn extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;

  constructor(type: string, init: CloseEventInit = {}) {
    super(type, init);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
}

const CloseEventClass: typeof CloseEvent = "CloseEvent" in globalThis
  ? globalThis.CloseEvent
  : CloseEventStandIn as unknown as typeof CloseEvent;

/**
 * The handlers to give `serve` as its `websocket` option (as with `hono/bun`). Every upgrade
 * made by {@linkcode upgradeWebSocket} names them as its socket's handlers too, so a server-wide
 * `websocket` of the app's own for other sockets is left alone.
 */
export const websocket: WebSocketHandler<HonoSocketData> = {
  open(ws) {
    const data = ws.data;
    data.context = new WSContext(ws);
    return dispatch(data, data.events.onOpen, () => new Event("open"));
  },
  message(ws, message) {
    const data = ws.data;
    return dispatch(data, data.events.onMessage, () => {
      const payload = typeof message === "string"
        ? message
        : data.context!.binaryType === "blob"
        ? new Blob([message as Uint8Array<ArrayBuffer>])
        : exactArrayBuffer(message);
      return new MessageEvent("message", { data: payload });
    });
  },
  close(ws, code, reason) {
    const data = ws.data;
    return dispatch(
      data,
      data.events.onClose,
      () => new CloseEventClass("close", { code, reason, wasClean: code !== 1006 }),
    );
  },
};

/**
 * Calls `handler` (when the route has one) with the event `makeEvent` makes, routing its
 * failure to `onError` when the route has that. Returns the promise of an async handler, so that
 * Wisp waits for it where it would (the `awaitMessages` option) and catches what `onError` throws.
 */
function dispatch<E extends Event>(
  data: HonoSocketData,
  handler: ((event: E, ws: WSContext) => void | Promise<void>) | undefined,
  makeEvent: () => E,
): void | Promise<void> {
  if (handler === undefined) return;
  const context = data.context!;
  const onError = data.events.onError;
  if (onError === undefined) return handler(makeEvent(), context);
  const failed = (error: unknown) => onError(Object.assign(new Event("error"), { error }), context);
  try {
    const result = handler(makeEvent(), context);
    if (result instanceof Promise) return result.catch(failed);
  } catch (error) {
    return failed(error);
  }
}

/** The `upgrade` of Wisp's fetch info, which Hono passes on as `c.env`. */
function upgraderOf(env: unknown): Upgrader<HonoSocketData> {
  const upgrade = (env as Partial<Upgrader<HonoSocketData>> | null | undefined)?.upgrade;
  if (typeof upgrade !== "function") {
    throw new TypeError(
      "upgradeWebSocket: c.env is not Wisp's fetch info; serve the app with serve({ fetch: app.fetch }), " +
        "or pass fetch's second argument on: app.fetch(request, info)",
    );
  }
  return env as Upgrader<HonoSocketData>;
}

/** Takes `c`'s request over with `events` as its handlers: false when it is no WebSocket upgrade. */
function upgrade(c: HonoContext, events: WSEvents): boolean {
  const request = c.req.raw;
  return upgraderOf(c.env).upgrade(request, { data: { events, url: request.url, context: null }, websocket });
}

/**
 * Middleware that takes a WebSocket upgrade request over with the handlers `createEvents`
 * returns for its context (route parameters, what earlier middleware set); it answers nothing
 * itself, since the 101 (or Wisp's refusal of a foreign `Origin`, a path or subprotocol it does
 * not serve) is Wisp's. A request that is no valid upgrade goes on to the next handler (Hono's
 * 404 when there is none), as with Hono's other adapters. Throws a `TypeError` when `c.env` is
 * not Wisp's fetch info.
 *
 * `c` is Hono's `Context` (typed `any` here, as this module cannot name Hono's types; annotate it,
 * `(c: Context) => …`, for Hono's types).
 */
// deno-lint-ignore no-explicit-any
export function upgradeWebSocket<C extends HonoContext = any>(
  createEvents: (c: C) => WSEvents | Promise<WSEvents>,
): (c: C, next: () => Promise<void>) => Promise<Response | void>;
/**
 * Takes `c`'s request over as a WebSocket with `events`, inside a handler: resolves to the
 * response to return (Wisp ignores it), and rejects when the request is no valid upgrade.
 */
export function upgradeWebSocket(c: HonoContext, events: WSEvents): Promise<Response>;
export function upgradeWebSocket<C extends HonoContext>(
  first: C | ((c: C) => WSEvents | Promise<WSEvents>),
  events?: WSEvents,
): ((c: C, next: () => Promise<void>) => Promise<Response | void>) | Promise<Response> {
  if (typeof first === "function") {
    return async (c: C, next: () => Promise<void>) => {
      if (upgrade(c, await first(c))) return new Response(null);
      await next();
    };
  }
  return new Promise((resolve) => {
    if (!upgrade(first, events ?? {})) throw new Error("Failed to upgrade WebSocket");
    resolve(new Response(null));
  });
}

/** The client's address as Hono's `getConnInfo` helpers give it (the shape of Hono's `ConnInfo`). */
export interface ConnInfo {
  /** The remote end of the connection. */
  remote: {
    /** The client's IP address. */
    address: string;
    /** The client's port. */
    port: number;
    /** `"IPv6"` for an address with a colon, else `"IPv4"`. */
    addressType: "IPv4" | "IPv6";
    /** Always `"tcp"`. */
    transport: "tcp";
  };
}

/**
 * The client's address from `c.env`, Wisp's fetch info, for Hono's middleware that asks for a
 * `getConnInfo` (such as `ipRestriction`). Throws a `TypeError` when `c.env` is not Wisp's.
 */
export function getConnInfo(c: { readonly env: unknown }): ConnInfo {
  const info = c.env as Partial<ConnectionInfo> | null | undefined;
  if (typeof info?.remoteAddress !== "string") {
    throw new TypeError(
      "getConnInfo: c.env is not Wisp's fetch info; serve the app with serve({ fetch: app.fetch })",
    );
  }
  const address = info.remoteAddress;
  return {
    remote: {
      address,
      port: info.remotePort ?? 0,
      addressType: address.includes(":") ? "IPv6" : "IPv4",
      transport: "tcp",
    },
  };
}
