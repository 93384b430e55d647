/**
 * `attach`: Wisp's WebSockets on an `http.Server` (or `https.Server`) an app already has —
 * Express's, Fastify's, Koa's — sharing its port: the app keeps every other request, and Wisp
 * takes the WebSocket upgrades of its `path` from the server's `upgrade` event (or, for apps that
 * route upgrades themselves, from `handleUpgrade`, like `ws`'s `noServer` mode).
 * @module
 */

import { type HttpError, isUpgradeRequest, type RequestHead, requestHead } from "./handshake.ts";
import { resolveOptions, type ServeOptions } from "./options.ts";
import { adoptUpgradeSocket } from "./runtime/node.ts";
import { type Acceptor, type Server, startServer } from "./server.ts";

/** The options of `serve` that an attached server does not have: the app's server listens and answers HTTP. */
const NOT_ATTACHED = ["port", "hostname", "reusePort", "tls", "fetch", "metrics"] as const;

/** Options of {@linkcode attach}: those of `serve`, but listening and plain HTTP (the app's server does those). */
export type AttachOptions<T = undefined> = Omit<ServeOptions<T>, (typeof NOT_ATTACHED)[number]>;

/** The request an `http.Server`'s `upgrade` event brings (`IncomingMessage`), as Wisp reads it. */
export interface UpgradeRequestMessage {
  /** The request method. */
  readonly method?: string;
  /** The request target, e.g. `/chat?room=1`. */
  readonly url?: string;
  /** The minor version of HTTP/1.x. */
  readonly httpVersionMinor: number;
  /** The header fields as they came: names and values alternating. */
  readonly rawHeaders: readonly string[];
}

/** A listener of an `http.Server`'s `upgrade` event. */
export type UpgradeListener = (request: UpgradeRequestMessage, socket: object, head: Uint8Array) => void;

/** The part of a `node:http` (or `node:https`) server that {@linkcode attach} uses. */
export interface HttpServerLike {
  /** Adds an `upgrade` listener. */
  on(event: "upgrade", listener: UpgradeListener): unknown;
  /** Removes it. */
  off(event: "upgrade", listener: UpgradeListener): unknown;
  /** Where it listens (null before it does). */
  address(): { port: number; address: string } | string | null;
}

/** A server attached to an app's `http.Server`, as {@linkcode attach} returns it. */
export interface AttachedServer<T = undefined> extends Server<T> {
  /**
   * Takes one upgrade request over, from an `upgrade` listener of the app's own (as `ws`'s
   * `handleUpgrade`): `socket` is the `net.Socket` (or `tls.TLSSocket`) and `head` the bytes the
   * event brought. Every guard applies as to `serve`'s upgrades; a refused request gets its
   * status and reason on the socket, which is then closed.
   */
  handleUpgrade(request: UpgradeRequestMessage, socket: object, head: Uint8Array): void;
}

/**
 * Serves WebSockets on `httpServer`, an `http.Server` or `https.Server` the app made, sharing its
 * port; with `null`, on the upgrades the app hands to `handleUpgrade` itself. With a `path`, only
 * upgrade requests for it are taken, and every other upgrade is left to the server's other
 * `upgrade` listeners; without one, every WebSocket upgrade request. The server's other requests,
 * its keep-alive connections and its listening are the app's: `close()` closes Wisp's WebSockets
 * and stops listening for upgrades, not the server. Node only (Deno and Bun: see the README).
 * Throws a `TypeError`/`RangeError` naming a bad option, as `serve` does.
 *
 * @example Express and Wisp on one port
 * ```ts ignore
 * import express from "express";
 * import { attach } from "jsr:@wisp/wisp";
 *
 * const app = express();
 * app.get("/", (_req, res) => res.send("hello"));
 * const wisp = attach(app.listen(3000), {
 *   path: "/ws",
 *   websocket: { message: (ws, data) => void ws.send(data) },
 * });
 * ```
 */
export function attach<T = undefined>(
  httpServer: HttpServerLike | null,
  options: AttachOptions<T> = {},
): AttachedServer<T> {
  for (const name of NOT_ATTACHED) {
    if (typeof options === "object" && options !== null && Object.hasOwn(options, name)) {
      throw new TypeError(
        `option "${name}" is not one of attach()'s: the app's server listens and answers HTTP`,
      );
    }
  }
  const resolved = resolveOptions<T>(options);
  let acceptor: Acceptor | null = null;
  const take = (socket: object, head: Uint8Array, parsed: RequestHead | HttpError) => {
    const transport = adoptUpgradeSocket(socket as Parameters<typeof adoptUpgradeSocket>[0]);
    acceptor!.takeUpgrade(transport, parsed, head, (socket as { encrypted?: boolean }).encrypted === true);
  };
  const handleUpgrade = (request: UpgradeRequestMessage, socket: object, head: Uint8Array) =>
    take(socket, head, readHead(request));
  const listener: UpgradeListener = (request, socket, head) => {
    if (resolved.path !== null && pathOf(request.url) !== resolved.path) return; // another listener's
    const parsed = readHead(request);
    if (!("status" in parsed) && !isUpgradeRequest(parsed.headers)) return; // no WebSocket upgrade
    take(socket, head, parsed);
  };
  httpServer?.on("upgrade", listener);
  const address = () => {
    const bound = httpServer?.address();
    return typeof bound === "object" && bound !== null ? bound : { port: 0, address: "" };
  };
  const server = startServer(resolved, (given) => {
    acceptor = given;
    return {
      get port() {
        return address().port;
      },
      get hostname() {
        return address().address;
      },
      secure: typeof (httpServer as { setSecureContext?: unknown } | null)?.setSecureContext === "function",
      close: () => void httpServer?.off("upgrade", listener),
    };
  });
  return Object.assign(server, { handleUpgrade });
}

/** The head of a request another server has read. */
function readHead(request: UpgradeRequestMessage): RequestHead | HttpError {
  return requestHead(
    request.method ?? "GET",
    request.url ?? "/",
    request.httpVersionMinor,
    request.rawHeaders,
  );
}

/** The path of a request target (`/chat` of `/chat?room=1`). */
function pathOf(target: string | undefined): string {
  const end = (target ?? "/").search(/[?#]/);
  return end < 0 ? target ?? "/" : target!.slice(0, end);
}
